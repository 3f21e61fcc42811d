use std::collections::BTreeSet;

use ring::rand::SystemRandom;

use super::*;

fn rights(rights: &[Right]) -> BTreeSet<Right> {
    rights.iter().copied().collect()
}

fn scoped(prefixes: &[&str], r: &[Right]) -> NewToken {
    NewToken {
        prefixes: prefixes.iter().map(ToString::to_string).collect(),
        rights: rights(r),
        ..NewToken::default()
    }
}

/// A table with one token of `new`'s scope, created at 1000 as `t1`, and its text.
fn one(new: NewToken) -> (TokenTable, TokenSecret) {
    let (secret, hash) = generate(&SystemRandom::new()).unwrap();
    let mut table = TokenTable::default();
    table.insert(TokenId(1), hash, new, 1_000).unwrap();
    (table, secret)
}

#[test]
fn a_token_is_the_prefix_and_256_random_bits_in_hex_and_only_its_hash_is_kept() {
    let random = SystemRandom::new();
    let (a, hash) = generate(&random).unwrap();
    let (b, _) = generate(&random).unwrap();
    assert_ne!(a, b);
    assert_eq!(a.expose().len(), TOKEN_LEN);
    assert!(well_formed(a.expose()), "{}", a.expose());
    assert_eq!(hash, TokenHash::of(a.expose()));
    assert_eq!(
        format!("{a:?}"),
        "TokenSecret(..)",
        "Debug never shows the text"
    );
    // SHA-256 of the whole text, as the known answer for "abc" shows.
    assert_eq!(
        TokenHash::of("abc").to_string(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let (table, secret) = one(scoped(&[], &[Right::Read]));
    let json = serde_json::to_string(&table).unwrap();
    assert!(
        !json.contains(&secret.expose()[TOKEN_PREFIX.len()..]),
        "{json}"
    );
    assert!(json.contains(&secret.hash().to_string()), "{json}");
    let back: TokenTable = serde_json::from_str(&json).unwrap();
    assert_eq!(back, table);
}

#[test]
fn check_takes_a_known_unexpired_token_and_refuses_the_rest_by_cause() {
    let mut new = scoped(&[], &[Right::Read]);
    new.expires_at_ms = Some(5_000);
    let (mut table, secret) = one(new);
    let grant = table.check(secret.expose(), 4_999).unwrap();
    assert_eq!(grant.id, TokenId(1));
    assert_eq!(
        table.check(secret.expose(), 5_000),
        Err(AuthError::Expired(TokenId(1))),
        "expired from expires_at_ms on"
    );
    assert_eq!(table.check("", 0), Err(AuthError::Missing));
    let (other, _) = generate(&SystemRandom::new()).unwrap();
    assert_eq!(table.check(other.expose(), 0), Err(AuthError::Unknown));
    let text = secret.expose();
    let upper = text.to_ascii_uppercase().replace("HAZE_", "haze_");
    for bad in [
        &text[..TOKEN_LEN - 1],
        &format!("{text}0"),
        &text.replace("haze_", "hazy_"),
        &format!("haze_g{}", &text[6..]),
        &upper,
        &format!(" {}", &text[1..]),
    ] {
        assert_eq!(table.check(bad, 0), Err(AuthError::Malformed), "{bad:?}");
    }
    // Refused by its length alone, whatever its size.
    let huge = "haze_".to_string() + &"a".repeat(1 << 20);
    assert_eq!(table.check(&huge, 0), Err(AuthError::Malformed));
    // Revoked: unknown, like one never created; the id is not reused by the table.
    assert_eq!(table.revoke(TokenId(1)).map(|t| t.id), Some(TokenId(1)));
    assert_eq!(table.revoke(TokenId(1)), None);
    assert_eq!(table.check(text, 0), Err(AuthError::Unknown));
    // No message quotes the token.
    for e in [
        AuthError::Missing,
        AuthError::Malformed,
        AuthError::Unknown,
        AuthError::Expired(TokenId(1)),
    ] {
        assert!(!e.to_string().contains(&text[5..]), "{e}");
    }
}

#[test]
fn a_prefix_is_a_byte_prefix_of_the_key() {
    let (table, secret) = one(scoped(&["user:42/", "shared/"], &[Right::Read]));
    let grant = table.check(secret.expose(), 0).unwrap();
    assert!(grant.allows(b"user:42/name", Right::Read));
    assert!(grant.allows(b"user:42/", Right::Read), "the prefix itself");
    assert!(grant.allows(b"shared/x", Right::Read));
    assert!(
        !grant.allows(b"user:420", Right::Read),
        "not a prefix of it"
    );
    assert!(!grant.allows(b"user:42", Right::Read));
    assert!(
        !grant.allows(b"USER:42/name", Right::Read),
        "bytes, not case-folded"
    );
    assert!(!grant.allows(b"", Right::Read));
    assert!(!grant.allows(b"x/user:42/", Right::Read));
    // Without the separator, a prefix covers more than a user may expect: hence the advice.
    let (table, secret) = one(scoped(&["user:42"], &[Right::Read]));
    assert!(
        table
            .check(secret.expose(), 0)
            .unwrap()
            .allows(b"user:420", Right::Read)
    );
    // No prefix: every key, even non-UTF-8 ones.
    let (table, secret) = one(scoped(&[], &[Right::Write]));
    let grant = table.check(secret.expose(), 0).unwrap();
    assert!(grant.allows(b"", Right::Write) && grant.allows(&[0xff, 0], Right::Write));
}

#[test]
fn rights_are_what_was_given_and_admin_implies_read_and_write() {
    let grant = |r: &[Right]| {
        let (table, secret) = one(scoped(&["a/"], r));
        table.check(secret.expose(), 0).unwrap()
    };
    let read = grant(&[Right::Read]);
    assert!(read.allows(b"a/1", Right::Read));
    assert!(!read.allows(b"a/1", Right::Write));
    assert!(!read.allows(b"a/1", Right::Admin));
    assert!(!read.is_admin());
    let write = grant(&[Right::Write]);
    assert!(
        !write.allows(b"a/1", Right::Read),
        "write alone does not read"
    );
    assert!(write.allows(b"a/1", Right::Write));
    let admin = grant(&[Right::Admin]);
    assert!(admin.is_admin());
    for right in [Right::Read, Right::Write, Right::Admin] {
        assert!(admin.allows(b"a/1", right), "{right}");
        assert!(
            !admin.allows(b"b/1", right),
            "{right}: only inside its prefixes"
        );
    }
}

#[test]
fn a_new_token_is_checked() {
    let mut table = TokenTable::default();
    let mut id = 0;
    let mut insert = |new: NewToken| {
        id += 1;
        let (_, hash) = generate(&SystemRandom::new()).unwrap();
        table.insert(TokenId(id), hash, new, 1_000).cloned()
    };
    assert_eq!(insert(scoped(&[], &[])), Err(TokenError::NoRights));
    assert_eq!(
        insert(scoped(&[""], &[Right::Read])),
        Err(TokenError::EmptyPrefix)
    );
    let long = "x".repeat(MAX_PREFIX_BYTES + 1);
    assert_eq!(
        insert(scoped(&[&long], &[Right::Read])),
        Err(TokenError::PrefixTooLong(MAX_PREFIX_BYTES + 1))
    );
    let many: Vec<String> = (0..=MAX_PREFIXES).map(|i| format!("p{i}/")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(matches!(
        insert(scoped(&many, &[Right::Read])),
        Err(TokenError::TooManyPrefixes(_))
    ));
    for description in [
        "line\nbreak".to_string(),
        "x".repeat(MAX_DESCRIPTION_BYTES + 1),
    ] {
        let new = NewToken {
            description,
            ..scoped(&[], &[Right::Read])
        };
        assert_eq!(insert(new), Err(TokenError::BadDescription));
    }
    let mut passed = scoped(&[], &[Right::Read]);
    passed.expires_at_ms = Some(1_000);
    assert_eq!(insert(passed), Err(TokenError::ExpiryPassed));
    let token = insert(scoped(&["b/", "a/", "b/"], &[Right::Read])).unwrap();
    assert_eq!(token.prefixes, ["a/", "b/"], "sorted, once each");
    assert_eq!(token.created_ms, 1_000);
}

#[test]
fn a_table_with_a_duplicate_id_or_hash_is_refused_when_read() {
    let (secret, hash) = generate(&SystemRandom::new()).unwrap();
    let mut table = TokenTable::default();
    table
        .insert(TokenId(1), hash, scoped(&[], &[Right::Admin]), 0)
        .unwrap();
    let (_, hash2) = generate(&SystemRandom::new()).unwrap();
    let mut new = scoped(&[], &[Right::Read]);
    new.description = "phone".into();
    table.insert(TokenId(2), hash2, new, 0).unwrap();
    assert!(table.has_live_admin(0));
    assert_eq!(table.last_id(), Some(TokenId(2)));
    let json = serde_json::to_string(&table).unwrap();
    let dup_id = json.replace("\"t2\"", "\"t1\"");
    assert!(serde_json::from_str::<TokenTable>(&dup_id).is_err());
    let dup_hash = json.replace(&hash2.to_string(), &hash.to_string());
    assert!(serde_json::from_str::<TokenTable>(&dup_hash).is_err());
    // Nodes get no descriptions; they check tokens the same.
    let nodes = table.for_nodes();
    assert!(nodes.tokens().iter().all(|t| t.description.is_empty()));
    assert!(nodes.check(secret.expose(), 0).unwrap().is_admin());
}

#[test]
fn a_bearer_header_gives_its_token() {
    assert_eq!(bearer(None), Err(AuthError::Missing));
    assert_eq!(bearer(Some(b"  ")), Err(AuthError::Missing));
    assert_eq!(bearer(Some(b"Bearer haze_1")), Ok("haze_1"));
    assert_eq!(bearer(Some(b"bearer   haze_1 ")), Ok("haze_1"));
    assert_eq!(bearer(Some(b"Basic dXNlcg==")), Err(AuthError::Malformed));
    assert_eq!(bearer(Some(b"haze_1")), Err(AuthError::Malformed));
    assert_eq!(
        bearer(Some("Bearer h\u{e9}".as_bytes())),
        Err(AuthError::Malformed)
    );
    let long = format!("Bearer {}", "a".repeat(300));
    assert_eq!(bearer(Some(long.as_bytes())), Err(AuthError::Malformed));
}

#[test]
fn ids_read_as_t_and_a_number() {
    assert_eq!("t3".parse(), Ok(TokenId(3)));
    assert_eq!("3".parse(), Ok(TokenId(3)));
    assert_eq!(TokenId(3).to_string(), "t3");
    for bad in [
        "",
        "t",
        "t0",
        "tt3",
        "t+3",
        "t-1",
        "x3",
        "t99999999999999999999999",
    ] {
        assert_eq!(bad.parse::<TokenId>(), Err(TokenError::BadId), "{bad:?}");
    }
    assert_eq!(serde_json::to_string(&TokenId(7)).unwrap(), "\"t7\"");
    assert_eq!(
        serde_json::from_str::<TokenId>("\"t7\"").unwrap(),
        TokenId(7)
    );
}
