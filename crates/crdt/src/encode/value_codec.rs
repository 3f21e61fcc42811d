//! The layout of each value type. `docs/storage-format.md` describes the same layout in prose;
//! change both together, and add a format version for any change to what is written.

use std::collections::BTreeMap;

use super::MAX_DEPTH;
use super::reader::Reader;
use super::writer;
use crate::clock::{ActorId, Dot, DotSet, HlcTimestamp, VersionVector};
use crate::error::DecodeError;
use crate::register::Stamp;
use crate::value::{Field, Scalar, Value, ValueKind};
use crate::{EnableWinsFlag, GCounter, LwwRegister, Max, Min, MvRegister, OrMap, OrSet, PnCounter};

/// An entry header packs the scalar's tag (2 bits) with the dot count (6 bits); a count of 63 or
/// more writes 63 there and the rest as a varint.
const INLINE_DOTS_ESCAPE: usize = 63;

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
                write_entry_key(out, item, dots.len());
                for &dot in dots.as_slice() {
                    write_dot(out, s.seen(), dot);
                }
            }
        }
        Value::OrMap(m) => {
            write_vv(out, m.seen());
            writer::len(out, m.len());
            for (field, values) in m.entries() {
                write_entry_key(out, &field.key, values.len());
                for (dot, v) in values {
                    write_dot(out, m.seen(), *dot);
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

/// The start of a set element or map field: a header byte packing the key's scalar tag with the
/// number of dots that follow, then the key's payload.
fn write_entry_key(out: &mut Vec<u8>, key: &Scalar, dots: usize) {
    out.push(key.tag() | (dots.min(INLINE_DOTS_ESCAPE) as u8) << 2);
    if dots >= INLINE_DOTS_ESCAPE {
        writer::len(out, dots - INLINE_DOTS_ESCAPE);
    }
    write_scalar_payload(out, key);
}

fn write_scalar(out: &mut Vec<u8>, s: &Scalar) {
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
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep(MAX_DEPTH));
    }
    let offset = r.offset();
    let tag = r.u8()?;
    let kind = ValueKind::from_tag(tag).ok_or(DecodeError::UnknownKind { tag, offset })?;
    Ok(match kind {
        ValueKind::GCounter => Value::GCounter(GCounter::from_counts(read_vv(r)?)),
        ValueKind::PnCounter => {
            let increments = GCounter::from_counts(read_vv(r)?);
            Value::PnCounter(PnCounter::from_parts(
                increments,
                GCounter::from_counts(read_vv(r)?),
            ))
        }
        ValueKind::LwwRegister => Value::LwwRegister(match read_presence(r)? {
            false => LwwRegister::new(),
            true => {
                let time = HlcTimestamp::from_raw(r.varint()?);
                let actor = ActorId::new(r.varint()?);
                LwwRegister::with_stamp(Stamp { time, actor }, read_scalar(r)?)
            }
        }),
        ValueKind::MvRegister => Value::MvRegister(read_mv_register(r)?),
        ValueKind::OrSet => Value::OrSet(read_or_set(r)?),
        ValueKind::OrMap => Value::OrMap(read_or_map(r, depth)?),
        ValueKind::Flag => {
            let seen = read_vv(r)?;
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

fn read_vv(r: &mut Reader<'_>) -> Result<VersionVector, DecodeError> {
    let n = r.count(2)?;
    let mut entries = Vec::with_capacity(n);
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
        entries.push((ActorId::new(actor), count));
        previous = Some(actor);
    }
    Ok(VersionVector::from_sorted(entries))
}

fn read_dot(r: &mut Reader<'_>, seen: &VersionVector) -> Result<Dot, DecodeError> {
    let index = usize::try_from(r.varint()?)
        .map_err(|_| invalid("a dot's actor is not in the causal context"))?;
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
    let mut dots: Vec<Dot> = Vec::with_capacity(n);
    for _ in 0..n {
        let dot = read_dot(r, seen)?;
        if dots.last().is_some_and(|&last| last >= dot) {
            return Err(invalid("dots are strictly increasing"));
        }
        dots.push(dot);
    }
    Ok(dots)
}

fn read_scalar(r: &mut Reader<'_>) -> Result<Scalar, DecodeError> {
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

/// Reads the start of a set element or map field: its key and how many dots follow.
fn read_entry_key(r: &mut Reader<'_>) -> Result<(Scalar, usize), DecodeError> {
    let header = r.u8()?;
    let inline = usize::from(header >> 2);
    let n = match inline {
        0 => return Err(invalid("a live entry has at least one dot")),
        INLINE_DOTS_ESCAPE => INLINE_DOTS_ESCAPE + r.count(2)?,
        n => n,
    };
    if n > r.remaining() / 2 {
        return Err(DecodeError::LengthTooLarge {
            claimed: n as u64,
            remaining: r.remaining(),
            offset: r.offset(),
        });
    }
    Ok((read_scalar_payload(r, header & 0b11)?, n))
}

fn read_mv_register(r: &mut Reader<'_>) -> Result<MvRegister<Scalar>, DecodeError> {
    let seen = read_vv(r)?;
    let n = r.count(4)?;
    let mut values: Vec<(Dot, Scalar)> = Vec::with_capacity(n);
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
    let seen = read_vv(r)?;
    let n = r.count(4)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let (item, n) = read_entry_key(r)?;
        let dots = DotSet::from_sorted(read_dots(r, &seen, n)?).expect("n >= 1");
        if entries.last().is_some_and(|(last, _)| *last >= item) {
            return Err(invalid("set elements are strictly increasing"));
        }
        entries.push((item, dots));
    }
    Ok(OrSet::from_parts(seen, BTreeMap::from_iter(entries)))
}

fn read_or_map(r: &mut Reader<'_>, depth: usize) -> Result<OrMap<Field, Value>, DecodeError> {
    let seen = read_vv(r)?;
    let n = r.count(5)?;
    let mut entries: Vec<(Field, Vec<(Dot, Value)>)> = Vec::with_capacity(n);
    for _ in 0..n {
        let (key, n_dots) = read_entry_key(r)?;
        let mut values: Vec<(Dot, Value)> = Vec::with_capacity(n_dots);
        for _ in 0..n_dots {
            let dot = read_dot(r, &seen)?;
            if values.last().is_some_and(|(last, _)| *last >= dot) {
                return Err(invalid("dots are strictly increasing"));
            }
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
    Ok(OrMap::from_parts(seen, BTreeMap::from_iter(entries)))
}
