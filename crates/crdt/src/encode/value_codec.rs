//! The layout of each value type. `docs/storage-format.md` describes the same layout in prose;
//! change both together, and add a format version for any change to what is written.

use std::collections::BTreeMap;

use super::MAX_DEPTH;
use super::reader::Reader;
use super::writer;
use crate::clock::{ActorId, Dot, DotSet, HlcTimestamp, VersionVector};
use crate::error::DecodeError;
use crate::register::Stamp;
use crate::value::{Field, Scalar, Value, ValueKind, ValueMap};
use crate::{EnableWinsFlag, GCounter, LwwRegister, Max, Min, MvRegister, OrSet, PnCounter};

// An entry (a set element, a map field) starts with a header byte: the key's scalar tag in the
// low 2 bits, and in the high 6 bits a mode `m` that says how its dots are written:
//
// * `m < 48`: exactly one dot, whose actor is at index `m` of the causal context; only the
//   dot's counter follows the key. This is the common case, and saves a byte per entry.
// * `48 <= m < 63`: `m - 47` dots (1 to 15), each as (actor index, counter); one dot is written
//   this way only when its actor index is 48 or more.
// * `m == 63`: `16 + n` dots, with `n` a varint after the header.
/// Actor indexes below this are packed into the header of a one-dot entry.
const INLINE_ACTORS: usize = 48;
/// The mode of an entry with `n <= 15` explicit dots is `SMALL_COUNT_BASE + n`.
const SMALL_COUNT_BASE: usize = 47;
/// The mode that says the dot count follows as a varint (plus 16).
const COUNT_ESCAPE: usize = 63;
const LARGE_COUNT_BASE: usize = 16;

/// At most this many items are reserved ahead from a count read from the input; collections
/// grow past it only as items actually decode. Counts are checked against the bytes that
/// remain, but that check is per collection, and nested collections would otherwise each
/// reserve in proportion to the same remaining bytes.
const MAX_PREALLOCATED: usize = 64;

fn reserve<T>(count: usize) -> Vec<T> {
    Vec::with_capacity(count.min(MAX_PREALLOCATED))
}

/// How an entry's dots are laid out.
#[derive(Debug, Clone, Copy)]
enum DotsLayout {
    /// One dot of the actor at this index: only its counter is written.
    Inline(usize),
    /// This many dots, each as (actor index, counter).
    Explicit(usize),
}

fn invalid(what: &'static str) -> DecodeError {
    DecodeError::InvalidState(what)
}

// ---------------------------------------------------------------------------------------------
// Writing

pub(super) fn write_value(out: &mut Vec<u8>, value: &Value) {
    out.push(value.kind().tag());
    match value {
        Value::GCounter(c) => write_vv(out, c.counts()),
        Value::PnCounter(c) => {
            write_vv(out, c.increments().counts());
            write_vv(out, c.decrements().counts());
        }
        Value::LwwRegister(r) => match r.entry() {
            None => out.push(0),
            Some((stamp, v)) => {
                out.push(1);
                writer::varint(out, stamp.time.to_raw());
                writer::varint(out, stamp.actor.get());
                write_scalar(out, v);
            }
        },
        Value::MvRegister(r) => {
            write_vv(out, r.seen());
            writer::len(out, r.entries().len());
            for (dot, v) in r.entries() {
                write_dot(out, r.seen(), *dot);
                write_scalar(out, v);
            }
        }
        Value::OrSet(s) => {
            write_vv(out, s.seen());
            writer::len(out, s.len());
            for (item, dots) in s.entries() {
                let dots = dots.as_slice();
                let layout = write_entry_key(out, item, dots.len(), dots.first(), s.seen());
                for &dot in dots {
                    write_entry_dot(out, s.seen(), dot, layout);
                }
            }
        }
        Value::OrMap(m) => {
            write_vv(out, m.seen());
            writer::len(out, m.len());
            for (field, values) in m.entries() {
                let first = values.first().map(|(dot, _)| dot);
                let layout = write_entry_key(out, &field.key, values.len(), first, m.seen());
                for (dot, v) in values {
                    write_entry_dot(out, m.seen(), *dot, layout);
                    write_value(out, v);
                }
            }
        }
        Value::Flag(f) => {
            write_vv(out, f.seen());
            let dots = f.dots().map(DotSet::as_slice).unwrap_or_default();
            writer::len(out, dots.len());
            for &dot in dots {
                write_dot(out, f.seen(), dot);
            }
        }
        Value::Max(m) => write_optional_scalar(out, m.get()),
        Value::Min(m) => write_optional_scalar(out, m.get()),
    }
}

/// Actors ascending, each as the difference from the previous one (the first from zero).
fn write_vv(out: &mut Vec<u8>, vv: &VersionVector) {
    writer::len(out, vv.len());
    let mut previous = 0;
    for (actor, count) in vv.iter() {
        writer::varint(out, actor.get() - previous);
        writer::varint(out, count);
        previous = actor.get();
    }
}

/// A dot as the index of its actor in the causal context, then its counter.
fn write_dot(out: &mut Vec<u8>, seen: &VersionVector, dot: Dot) {
    let index = seen
        .position(dot.actor)
        .expect("every dot of a state is in its causal context");
    writer::len(out, index);
    writer::varint(out, dot.counter);
}

/// Writes the header and key of a set element or map field with `count` dots, the first of
/// them `first`, and returns how its dots follow. (Not given the dots themselves: a map's
/// entries hold them beside their values, and collecting them cost an allocation per field.)
fn write_entry_key(
    out: &mut Vec<u8>,
    key: &Scalar,
    count: usize,
    first: Option<&Dot>,
    seen: &VersionVector,
) -> DotsLayout {
    let index = |dot: &Dot| {
        seen.position(dot.actor)
            .expect("every dot of a state is in its causal context")
    };
    let inline = match (count, first) {
        (1, Some(dot)) => Some(index(dot)).filter(|&i| i < INLINE_ACTORS),
        _ => None,
    };
    let (layout, mode) = match inline {
        Some(i) => (DotsLayout::Inline(i), i),
        None if count < LARGE_COUNT_BASE => (DotsLayout::Explicit(count), SMALL_COUNT_BASE + count),
        None => (DotsLayout::Explicit(count), COUNT_ESCAPE),
    };
    out.push(key.tag() | (mode as u8) << 2);
    if mode == COUNT_ESCAPE {
        writer::len(out, count - LARGE_COUNT_BASE);
    }
    write_scalar_payload(out, key);
    layout
}

/// Writes one dot of an entry in the entry's layout.
fn write_entry_dot(out: &mut Vec<u8>, seen: &VersionVector, dot: Dot, layout: DotsLayout) {
    match layout {
        DotsLayout::Inline(_) => writer::varint(out, dot.counter),
        DotsLayout::Explicit(_) => write_dot(out, seen, dot),
    }
}

/// Appends a scalar: its tag, then its payload.
pub fn write_scalar(out: &mut Vec<u8>, s: &Scalar) {
    out.push(s.tag());
    write_scalar_payload(out, s);
}

fn write_scalar_payload(out: &mut Vec<u8>, s: &Scalar) {
    match s {
        Scalar::Bytes(b) => writer::bytes(out, b),
        Scalar::String(text) => writer::bytes(out, text.as_bytes()),
        Scalar::Int(i) => writer::signed(out, *i),
        Scalar::UInt(u) => writer::varint(out, *u),
    }
}

fn write_optional_scalar(out: &mut Vec<u8>, s: Option<&Scalar>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            write_scalar(out, s);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

pub(super) fn read_value(r: &mut Reader<'_>, depth: usize) -> Result<Value, DecodeError> {
    let offset = r.offset();
    let tag = r.u8()?;
    let kind = ValueKind::from_tag(tag).ok_or(DecodeError::UnknownKind { tag, offset })?;
    // `depth` maps enclose this value; a map here would be level `depth + 1`.
    if kind == ValueKind::OrMap && depth >= MAX_DEPTH {
        return Err(DecodeError::TooDeep(MAX_DEPTH));
    }
    Ok(match kind {
        ValueKind::GCounter => Value::GCounter(GCounter::from_counts(read_vv(r, u64::MAX)?)),
        ValueKind::PnCounter => {
            let increments = GCounter::from_counts(read_vv(r, u64::MAX)?);
            Value::PnCounter(PnCounter::from_parts(
                increments,
                GCounter::from_counts(read_vv(r, u64::MAX)?),
            ))
        }
        ValueKind::LwwRegister => Value::LwwRegister(match read_presence(r)? {
            false => LwwRegister::new(),
            true => {
                let time = HlcTimestamp::from_raw(r.varint()?)
                    .ok_or(invalid("a timestamp is at most HlcTimestamp::MAX"))?;
                let actor = ActorId::new(r.varint()?);
                LwwRegister::with_stamp(Stamp { time, actor }, read_scalar(r)?)
            }
        }),
        ValueKind::MvRegister => Value::MvRegister(read_mv_register(r)?),
        ValueKind::OrSet => Value::OrSet(read_or_set(r)?),
        ValueKind::OrMap => Value::OrMap(read_or_map(r, depth)?),
        ValueKind::Flag => {
            let seen = read_vv(r, Dot::MAX_COUNTER)?;
            let n = r.count(2)?;
            let dots = DotSet::from_sorted(read_dots(r, &seen, n)?);
            Value::Flag(EnableWinsFlag::from_parts(seen, dots))
        }
        ValueKind::Max => Value::Max(
            read_presence(r)?
                .then(|| read_scalar(r))
                .transpose()?
                .map_or_else(Max::new, Max::of),
        ),
        ValueKind::Min => Value::Min(
            read_presence(r)?
                .then(|| read_scalar(r))
                .transpose()?
                .map_or_else(Min::new, Min::of),
        ),
    })
}

fn read_presence(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(invalid("a presence byte is 0 or 1")),
    }
}

/// Reads a version vector whose counts are at most `max_count`.
fn read_vv(r: &mut Reader<'_>, max_count: u64) -> Result<VersionVector, DecodeError> {
    let n = r.count(2)?;
    let mut entries = reserve(n);
    let mut previous: Option<u64> = None;
    for _ in 0..n {
        let delta = r.varint()?;
        let actor = match previous {
            None => delta,
            Some(_) if delta == 0 => {
                return Err(invalid(
                    "actors of a version vector are strictly increasing",
                ));
            }
            Some(p) => p
                .checked_add(delta)
                .ok_or(invalid("an actor id above 2^64"))?,
        };
        let count = r.varint()?;
        if count == 0 {
            return Err(invalid("a version vector holds no zero counts"));
        }
        if count > max_count {
            return Err(invalid(
                "a causal context counts at most 2^63 - 1 updates per actor",
            ));
        }
        entries.push((ActorId::new(actor), count));
        previous = Some(actor);
    }
    Ok(VersionVector::from_sorted(entries))
}

fn read_dot(r: &mut Reader<'_>, seen: &VersionVector) -> Result<Dot, DecodeError> {
    let index = usize::try_from(r.varint()?)
        .map_err(|_| invalid("a dot's actor is not in the causal context"))?;
    read_dot_of(r, seen, index)
}

/// Reads the counter of a dot of the `index`-th actor of `seen`, which must cover it.
fn read_dot_of(r: &mut Reader<'_>, seen: &VersionVector, index: usize) -> Result<Dot, DecodeError> {
    let (actor, max) = seen
        .entry_at(index)
        .ok_or(invalid("a dot's actor is not in the causal context"))?;
    let counter = r.varint()?;
    if counter == 0 || counter > max {
        return Err(invalid("a dot is outside the causal context"));
    }
    Ok(Dot::new(actor, counter))
}

fn read_dots(r: &mut Reader<'_>, seen: &VersionVector, n: usize) -> Result<Vec<Dot>, DecodeError> {
    let mut dots: Vec<Dot> = reserve(n);
    for _ in 0..n {
        let dot = read_dot(r, seen)?;
        if dots.last().is_some_and(|&last| last >= dot) {
            return Err(invalid("dots are strictly increasing"));
        }
        dots.push(dot);
    }
    Ok(dots)
}

/// Reads a scalar written by [`write_scalar`].
///
/// # Errors
///
/// A [`DecodeError`] for an unknown tag, bad UTF-8 or truncated input.
pub fn read_scalar(r: &mut Reader<'_>) -> Result<Scalar, DecodeError> {
    let offset = r.offset();
    let tag = r.u8()?;
    if tag > 3 {
        return Err(DecodeError::UnknownScalar { tag, offset });
    }
    read_scalar_payload(r, tag)
}

fn read_scalar_payload(r: &mut Reader<'_>, tag: u8) -> Result<Scalar, DecodeError> {
    let offset = r.offset();
    Ok(match tag {
        0 => Scalar::Bytes(r.bytes()?.to_vec()),
        1 => {
            let bytes = r.bytes()?;
            let text =
                std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { offset })?;
            Scalar::String(text.to_owned())
        }
        2 => Scalar::Int(r.signed()?),
        3 => Scalar::UInt(r.varint()?),
        _ => return Err(DecodeError::UnknownScalar { tag, offset }),
    })
}

/// Reads the header and key of a set element or map field.
fn read_entry_key(r: &mut Reader<'_>) -> Result<(Scalar, DotsLayout), DecodeError> {
    let header = r.u8()?;
    let mode = usize::from(header >> 2);
    let layout = match mode {
        m if m < INLINE_ACTORS => DotsLayout::Inline(m),
        COUNT_ESCAPE => DotsLayout::Explicit(LARGE_COUNT_BASE + r.count(2)?),
        m => DotsLayout::Explicit(m - SMALL_COUNT_BASE),
    };
    if let DotsLayout::Explicit(n) = layout
        && n > r.remaining() / 2
    {
        return Err(DecodeError::LengthTooLarge {
            claimed: n as u64,
            remaining: r.remaining(),
            offset: r.offset(),
        });
    }
    Ok((read_scalar_payload(r, header & 0b11)?, layout))
}

/// How many dots an entry of this layout has.
fn entry_dot_count(layout: DotsLayout) -> usize {
    match layout {
        DotsLayout::Inline(_) => 1,
        DotsLayout::Explicit(n) => n,
    }
}

/// Reads the `k`-th dot of an entry, checking that a one-dot entry that could have been inlined
/// was, and that dots increase.
fn read_entry_dot(
    r: &mut Reader<'_>,
    seen: &VersionVector,
    layout: DotsLayout,
    previous: Option<Dot>,
) -> Result<Dot, DecodeError> {
    let dot = match layout {
        DotsLayout::Inline(index) => read_dot_of(r, seen, index)?,
        DotsLayout::Explicit(n) => {
            let dot = read_dot(r, seen)?;
            if n == 1 && seen.position(dot.actor).is_ok_and(|i| i < INLINE_ACTORS) {
                return Err(invalid(
                    "a one-dot entry of one of the first 48 actors is written inline",
                ));
            }
            dot
        }
    };
    if previous.is_some_and(|p| p >= dot) {
        return Err(invalid("dots are strictly increasing"));
    }
    Ok(dot)
}

fn read_mv_register(r: &mut Reader<'_>) -> Result<MvRegister<Scalar>, DecodeError> {
    let seen = read_vv(r, Dot::MAX_COUNTER)?;
    let n = r.count(4)?;
    let mut values: Vec<(Dot, Scalar)> = reserve(n);
    for _ in 0..n {
        let dot = read_dot(r, &seen)?;
        if values.last().is_some_and(|(last, _)| *last >= dot) {
            return Err(invalid("register values are sorted by dot"));
        }
        values.push((dot, read_scalar(r)?));
    }
    Ok(MvRegister::from_parts(seen, values))
}

fn read_or_set(r: &mut Reader<'_>) -> Result<OrSet<Scalar>, DecodeError> {
    let seen = read_vv(r, Dot::MAX_COUNTER)?;
    let n = r.count(3)?;
    let mut entries = reserve(n);
    for _ in 0..n {
        let (item, layout) = read_entry_key(r)?;
        let mut dots = reserve(entry_dot_count(layout));
        for _ in 0..entry_dot_count(layout) {
            dots.push(read_entry_dot(r, &seen, layout, dots.last().copied())?);
        }
        let dots = DotSet::from_sorted(dots).ok_or(invalid("a live entry has at least one dot"))?;
        if entries.last().is_some_and(|(last, _)| *last >= item) {
            return Err(invalid("set elements are strictly increasing"));
        }
        entries.push((item, dots));
    }
    Ok(OrSet::from_parts(seen, BTreeMap::from_iter(entries)))
}

fn read_or_map(r: &mut Reader<'_>, depth: usize) -> Result<ValueMap, DecodeError> {
    let seen = read_vv(r, Dot::MAX_COUNTER)?;
    let n = r.count(5)?;
    let mut entries: Vec<(Field, Vec<(Dot, Value)>)> = reserve(n);
    for _ in 0..n {
        let (key, layout) = read_entry_key(r)?;
        let n_dots = entry_dot_count(layout);
        if n_dots == 0 {
            return Err(invalid("a live entry has at least one dot"));
        }
        let mut values: Vec<(Dot, Value)> = reserve(n_dots);
        for _ in 0..n_dots {
            let dot = read_entry_dot(r, &seen, layout, values.last().map(|(d, _)| *d))?;
            let value = read_value(r, depth + 1)?;
            if values
                .first()
                .is_some_and(|(_, first)| first.kind() != value.kind())
            {
                return Err(invalid("the values of one map field have one type"));
            }
            values.push((dot, value));
        }
        let field = Field {
            key,
            kind: values[0].1.kind(),
        };
        if entries.last().is_some_and(|(last, _)| *last >= field) {
            return Err(invalid("map fields are strictly increasing"));
        }
        entries.push((field, values));
    }
    Ok(ValueMap::from_parts(seen, BTreeMap::from_iter(entries)))
}
