//! Reading flow control back from Redis' own records: the hand-outs of a queue at the events'
//! Redis timestamps, and the GCRA bound they must keep.
use baton::Queue;

/// (Redis ms, task id) of every event of `kind` ("claimed", "dispatched"), oldest first.
pub async fn hand_outs(q: &Queue, kind: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut after = "0-0".to_string();
    loop {
        let evs = q.events_after(&after, 1000).await.unwrap();
        let Some(last) = evs.last() else { break };
        after = last.id.clone();
        for e in evs.iter().filter(|e| e.kind == kind) {
            out.extend(e.tasks.iter().map(|t| (e.at_ms, t.id.clone())));
        }
    }
    out.sort();
    out
}

/// The details of the events of one kind (`held`: "<limit>|<wait>[|<group>]").
pub async fn details(q: &Queue, kind: &str) -> Vec<String> {
    let evs = q.events_after("0-0", 10_000).await.unwrap();
    evs.into_iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.detail.unwrap_or_default())
        .collect()
}

/// No window holds hand-outs of more cost than rate × its length + burst (`at`: Redis ms and
/// cost of each hand-out, oldest first; a window measured as d ms may really be up to d + 1 ms
/// long). Returns the sustained rate reached, in cost per second, after the first burst.
pub fn check_rate(at: &[(u64, f64)], rate: f64, burst: f64, what: &str) -> f64 {
    for i in 0..at.len() {
        let mut sum = 0.0;
        for j in i..at.len() {
            sum += at[j].1;
            let span = (at[j].0 - at[i].0 + 1) as f64;
            let allowed = rate * span / 1000.0 + burst;
            assert!(
                sum <= allowed + 1e-9,
                "{what}: hand-outs of cost {sum} within {span} ms: more than {rate}/s x that + burst {burst} = {allowed:.1}"
            );
        }
    }
    let total: f64 = at.iter().map(|a| a.1).sum();
    let span = (at[at.len() - 1].0 - at[0].0) as f64 / 1000.0;
    (total - burst) / span
}

/// Hand-out times, each of cost 1.
pub fn unit_costs(at: &[(u64, String)]) -> Vec<(u64, f64)> {
    at.iter().map(|(t, _)| (*t, 1.0)).collect()
}
