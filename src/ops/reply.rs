//! Decoding helpers for the scripts' replies (flat arrays of integers and strings).

use redis::{FromRedisValue, ParsingError, Value};

/// The elements of an array reply.
pub(crate) fn items(v: Value) -> Result<Vec<Value>, ParsingError> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        v => Err(format!("expected an array, got {v:?}").into()),
    }
}

pub(crate) fn int(v: &Value) -> Result<i64, ParsingError> {
    i64::from_redis_value_ref(v)
}

/// A non-negative count (negative values read as 0).
pub(crate) fn count(v: &Value) -> Result<u64, ParsingError> {
    Ok(int(v)?.max(0) as u64)
}

pub(crate) fn string(v: Value) -> Result<String, ParsingError> {
    String::from_redis_value(v)
}

pub(crate) fn bytes(v: Value) -> Result<Vec<u8>, ParsingError> {
    match v {
        Value::Nil => Ok(Vec::new()),
        v => Vec::<u8>::from_redis_value(v),
    }
}

/// "N ms from now", where the scripts answer -1 for "nothing due".
pub(crate) fn due_in(v: &Value) -> Result<Option<std::time::Duration>, ParsingError> {
    let n = int(v)?;
    Ok((n >= 0).then(|| std::time::Duration::from_millis(n as u64)))
}

/// A reply of exactly `N` elements.
pub(crate) fn exactly<const N: usize>(v: Value, what: &str) -> Result<[Value; N], ParsingError> {
    let got = items(v)?;
    let n = got.len();
    got.try_into()
        .map_err(|_| format!("{what}: expected {N} elements, got {n}").into())
}

/// The items of a flat reply of `K` values per item. Item types decode a whole flat array by
/// overriding `FromRedisValue::from_redis_values` (the hook redis-rs gives `Vec<T>` decoding),
/// so a script's reply reads as `Vec<Item>`.
pub(crate) fn groups<const K: usize>(
    items: Vec<Value>,
    script: &str,
) -> Result<Vec<[Value; K]>, ParsingError> {
    if !items.len().is_multiple_of(K) {
        return Err(format!(
            "{script}: {} values is not a whole number of {K}-value items",
            items.len()
        )
        .into());
    }
    let mut out = Vec::with_capacity(items.len() / K);
    let mut it = items.into_iter();
    while it.len() > 0 {
        let group: Vec<Value> = it.by_ref().take(K).collect();
        out.push(
            group
                .try_into()
                .map_err(|_| ParsingError::from(format!("{script}: short item")))?,
        );
    }
    Ok(out)
}

/// Flat replies are decoded owned; the by-reference path clones once.
macro_rules! flat_refs {
    () => {
        fn from_redis_value_refs(items: &[redis::Value]) -> Result<Vec<Self>, redis::ParsingError> {
            Self::from_redis_values(items.to_vec())
        }
    };
}
pub(crate) use flat_refs;
