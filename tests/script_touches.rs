//! Each script's header has a `touches:` line naming the key roles it may read and write
//! (docs/contract.md, "Script headers"). This test derives the same from the code and asserts
//! they agree, so a script cannot start using a key its header does not list.
//!
//! What the code touches: the roles whose `K_<ROLE>` locals are named by the script's body or by
//! any include function or local it uses, followed through the include functions those use in
//! turn, plus `idem` when the body indexes KEYS itself (the idempotency keys after the keyset).
//! A key named only in an error message or an ACL check (`bail`, `redis.acl_check_cmd`) is not
//! touched. Read or write comes from the command of each `redis.call` on the key: see `class`.
//! The test also checks that a script includes only what it uses.
use std::collections::{BTreeMap, BTreeSet, HashMap};

const LUA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/lua");

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num,
    Punct(&'static str),
}

/// A token and whether it starts a line at column 0 (a top-level statement in an include).
type Toks = Vec<(Tok, bool)>;

const PUNCTS: [&str; 20] = [
    "...", "..", "==", "~=", "<=", ">=", ".", ":", ",", ";", "(", ")", "{", "}", "[", "]", "=", "#", "+", "-",
];

/// Lua tokens, comments dropped. Enough of Lua for these scripts: strings in ' or ", long
/// comments `--[[ ]]` (the header), no long strings in code.
fn lex(src: &str) -> Toks {
    let b = src.as_bytes();
    let (mut i, mut out, mut line_start) = (0, Vec::new(), 0);
    while i < b.len() {
        let c = b[i];
        let col0 = i == line_start;
        if c == b'\n' {
            i += 1;
            line_start = i;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if src[i..].starts_with("--[[") {
            i += src[i..].find("]]").expect("unclosed long comment") + 2;
        } else if src[i..].starts_with("--") {
            i += src[i..].find('\n').unwrap_or(b.len() - i);
        } else if c == b'\'' || c == b'"' {
            let mut j = i + 1;
            let mut s = String::new();
            while b[j] != c {
                if b[j] == b'\\' {
                    j += 1;
                }
                s.push(b[j] as char);
                j += 1;
            }
            out.push((Tok::Str(s), col0));
            i = j + 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let j = i + src[i..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(b.len() - i);
            out.push((Tok::Ident(src[i..j].to_string()), col0));
            i = j;
        } else if c.is_ascii_digit() {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || (b[i] == b'.' && b.get(i + 1) != Some(&b'.')))
            {
                i += 1;
            }
            out.push((Tok::Num, col0));
        } else {
            let p = PUNCTS
                .iter()
                .find(|p| src[i..].starts_with(**p))
                .copied()
                .unwrap_or("?");
            out.push((Tok::Punct(p), col0));
            i += if p == "?" { 1 } else { p.len() };
        }
    }
    out
}

fn ident(t: &Tok) -> Option<&str> {
    match t {
        Tok::Ident(s) => Some(s),
        _ => None,
    }
}

/// A top-level piece of an include: a definition (`local function f`, `local a, b = ...`) is
/// used only when its names are; any other statement runs in every script including the file.
struct Chunk {
    file: String,
    defines: Vec<String>,
    body: Toks,
}

/// Splits an include at its top-level statements (those starting at column 0).
fn chunks(file: &str, toks: Toks) -> Vec<Chunk> {
    let mut parts: Vec<Toks> = Vec::new();
    for t in toks {
        let starts = t.1 && !matches!(ident(&t.0), Some("end" | "else" | "elseif" | "until"));
        match parts.last_mut() {
            Some(p) if !starts => p.push(t),
            _ => parts.push(vec![t]),
        }
    }
    parts
        .into_iter()
        .map(|p| {
            let id = |k: usize| p.get(k).and_then(|t| ident(&t.0));
            let mut defines = Vec::new();
            let mut skip = 0;
            if id(0) == Some("local") && id(1) == Some("function") {
                defines.push(id(2).unwrap().to_string());
                skip = 3;
            } else if id(0) == Some("local") {
                let mut k = 1;
                while let Some(n) = id(k) {
                    defines.push(n.to_string());
                    k += 1;
                    if p[k].0 != Tok::Punct(",") {
                        break;
                    }
                    k += 1;
                }
                assert_eq!(p[k].0, Tok::Punct("="), "include/{file}: a local without a value");
                skip = k + 1;
            }
            Chunk {
                file: file.to_string(),
                defines,
                body: p[skip..].to_vec(),
            }
        })
        .collect()
}

/// Every include file by name: the includes it names and its chunks.
type Incs = BTreeMap<String, (Vec<String>, Vec<Chunk>)>;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{LUA}/{path}")).unwrap_or_else(|e| panic!("lua/{path}: {e}"))
}

fn own_includes(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("--@include "))
        .map(|n| n.trim().to_string())
        .collect()
}

fn includes() -> Incs {
    std::fs::read_dir(format!("{LUA}/include"))
        .unwrap()
        .map(|e| {
            let f = e.unwrap().file_name().into_string().unwrap();
            let name = f
                .strip_suffix(".lua")
                .expect("only .lua files in lua/include")
                .to_string();
            let text = read(&format!("include/{f}"));
            (name.clone(), (own_includes(&text), chunks(&name, lex(&text))))
        })
        .collect()
}

fn closure(incs: &Incs, roots: &[String]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = roots.to_vec();
    while let Some(n) = todo.pop() {
        let deps = &incs.get(&n).unwrap_or_else(|| panic!("no lua/include/{n}.lua")).0;
        if seen.insert(n) {
            todo.extend(deps.iter().cloned());
        }
    }
    seen
}

/// How a command uses its key: read, write, or both (it changes the key and returns what it
/// held). Any command missing here fails the test: classify it when a script starts using it.
fn class(cmd: &str, args: &[Tok]) -> (bool, bool) {
    match cmd {
        "HGET" | "HMGET" | "HEXISTS" | "HGETALL" | "HLEN" | "HSCAN" | "ZSCORE" | "ZRANGE"
        | "ZRANGEBYSCORE" | "ZRANGEBYLEX" | "ZCARD" | "ZCOUNT" | "ZMSCORE" | "ZRANK" | "XLEN" | "XRANGE"
        | "GET" | "EXISTS" | "PTTL" | "TYPE" | "LRANGE" => (true, false),
        "HSET" | "HSETNX" | "HDEL" | "HINCRBY" | "ZADD" | "ZREM" | "DEL" | "XADD" | "XTRIM" | "PEXPIRE"
        | "RPUSH" => (false, true),
        "ZPOPMIN" | "ZPOPMAX" => (true, true),
        "SET" => (args.contains(&Tok::Str("GET".into())), true),
        _ => panic!("redis.call('{cmd}'): not classified as read or write in tests/script_touches.rs"),
    }
}

/// Key expressions that are neither a `K_<ROLE>` local nor a loop over some: (expression, role).
/// `xkey` is enqueue's check of one extra key; extra keys (idempotency, unique, debounce keys) are the
/// `idem` role; the keys of fair queueing derived from the meta key (include/fair.lua) are the
/// `groups` role.
const OTHER_KEYS: [(&str, &str); 25] = [
    ("t.idem", "idem"),
    ("t.uniq", "idem"),
    ("t.deb", "idem"),
    ("xkey", "idem"),
    ("gkey(?)", "groups"),
    ("gkey(?..g)", "groups"),
    ("gpending(g)", "groups"),
    ("gpending(g.name)", "groups"),
    ("glease(g)", "groups"),
    ("glease(g.name)", "groups"),
    ("fair_lib().gpending(g)", "groups"),
    ("wkey(?)", "wf"),
    ("wkey(?..id)", "wf"),
    ("wkey(?..dep)", "wf"),
    ("wo", "wf"),
    ("wx", "wf"),
    ("unpack(wx)", "wf"),
    ("flow_key(f)", "wf"),
    ("flow_members_key(f)", "wf"),
    ("tflow", "wf"),
    ("fk", "wf"),
    ("flow_members_key(fs.f)", "wf"),
    ("wkey(?..parent)", "wf"),
    ("flow_key(t.flow)", "wf"),
    ("ob", "wf"),
];

#[derive(Default, Debug)]
struct Use {
    /// role -> (read, write); a role named but never given to a redis.call has (false, false)
    roles: BTreeMap<String, (bool, bool)>,
    /// include files whose definitions the script uses
    files: BTreeSet<String>,
}

fn role_of(name: &str) -> Option<String> {
    let r = name.strip_prefix("K_")?.to_ascii_lowercase();
    assert!(
        baton::keys::ROLES.contains(&r.as_str()),
        "{name} is not a key role of src/keys.rs ROLES"
    );
    Some(r)
}

/// What a script touches, following the include definitions it uses.
fn analyse(script: &str, incs: &Incs) -> Use {
    analyse_text(script, &read(&format!("{script}.lua")), incs)
}

fn analyse_text(script: &str, text: &str, incs: &Incs) -> Use {
    let listed = closure(incs, &own_includes(text));
    let mut defs: HashMap<&str, &Chunk> = HashMap::new();
    for (_, cs) in incs.values() {
        for c in cs {
            for d in &c.defines {
                assert!(defs.insert(d, c).is_none(), "{d} is defined in two includes");
            }
        }
    }
    // the body runs, and every top-level statement of an included file; a name used by the
    // latter does not make its file used (keys.lua's check of #KEYS names its own NKEYS)
    let body = lex(text);
    let mut todo: Vec<(&Toks, bool)> = vec![(&body, true)];
    for n in &listed {
        let run = incs[n].1.iter().filter(|c| c.defines.is_empty());
        todo.extend(run.map(|c| (&c.body, false)));
    }
    let mut u = Use::default();
    if body.iter().any(|t| ident(&t.0) == Some("KEYS")) {
        u.roles.insert("idem".into(), (false, false));
    }
    let mut followed: BTreeSet<&str> = BTreeSet::new();
    let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
    let mut calls: Vec<(String, Vec<Tok>, Vec<Tok>)> = Vec::new();
    while let Some((toks, uses)) = todo.pop() {
        let mut quiet_until = 0; // inside bail(...) or redis.acl_check_cmd(...)
        for (k, (t, _)) in toks.iter().enumerate() {
            let Some(name) = ident(t) else { continue };
            let prev = k.checked_sub(1).map(|j| &toks[j].0);
            if matches!(prev, Some(Tok::Punct(".") | Tok::Punct(":"))) {
                continue; // a field, not a local
            }
            if name == "bail"
                || (name == "redis" && toks.get(k + 2).and_then(|t| ident(&t.0)) == Some("acl_check_cmd"))
            {
                quiet_until = quiet_until.max(close_paren(toks, k));
            }
            // the keys fair queueing derives from the meta key (include/fair.lua)
            if k >= quiet_until && matches!(name, "gkey" | "gpending" | "glease") {
                u.roles.entry("groups".into()).or_default();
            }
            // the keys of dependencies, derived the same way (include/deps.lua)
            if k >= quiet_until && name == "wkey" {
                u.roles.entry("wf".into()).or_default();
            }
            if let Some(c) = defs.get(name) {
                if uses {
                    u.files.insert(c.file.clone());
                }
                if let Some(r) = role_of(name) {
                    if k >= quiet_until {
                        u.roles.entry(r).or_default();
                    }
                } else if followed.insert(name) {
                    todo.push((&c.body, true));
                }
            } else {
                assert!(role_of(name).is_none(), "{name} is not defined by any include");
            }
            // for _, alias in ipairs({ ...K_X... }) do
            if name == "for" {
                if let (Some(a), Some("in"), Some("ipairs")) = (
                    toks.get(k + 3).and_then(|t| ident(&t.0)),
                    toks.get(k + 4).and_then(|t| ident(&t.0)),
                    toks.get(k + 5).and_then(|t| ident(&t.0)),
                ) {
                    let end = close_paren(toks, k + 5);
                    let roles: Vec<String> = toks[k + 5..end]
                        .iter()
                        .filter_map(|t| role_of(ident(&t.0)?))
                        .collect();
                    if !roles.is_empty() {
                        aliases.entry(a.to_string()).or_default().extend(roles);
                    }
                }
            }
            // redis.call('CMD', key, args...)
            if name == "redis" && toks.get(k + 2).and_then(|t| ident(&t.0)) == Some("call") {
                let end = close_paren(toks, k + 2);
                let Tok::Str(cmd) = &toks[k + 4].0 else {
                    panic!("{script}: redis.call with a computed command")
                };
                if cmd == "TIME" || cmd == "PUBLISH" {
                    continue; // no key (a channel is not a key)
                }
                let args: Vec<Tok> = toks[k + 6..end].iter().map(|t| t.0.clone()).collect();
                let key_end = (0..args.len())
                    .find(|&j| args[j] == Tok::Punct(",") && depth(&args[..j]) == 0)
                    .unwrap_or(args.len());
                calls.push((cmd.clone(), args[..key_end].to_vec(), args));
            }
        }
    }
    for (cmd, key, args) in calls {
        let (r, w) = class(&cmd, &args);
        let roles: Vec<String> = match key.first().and_then(ident) {
            Some(n) if key.len() == 1 && role_of(n).is_some() => vec![role_of(n).unwrap()],
            Some(n) if aliases.contains_key(n) => aliases[n].clone(),
            _ => {
                let expr: String = key
                    .iter()
                    .map(|t| match t {
                        Tok::Ident(s) => s.as_str(),
                        Tok::Punct(p) => p,
                        _ => "?",
                    })
                    .collect();
                let (_, role) = OTHER_KEYS.iter().find(|(e, _)| *e == expr).unwrap_or_else(|| {
                    panic!(
                        "{script}: redis.call('{cmd}', {expr}, ...): which key role is {expr}? (OTHER_KEYS)"
                    )
                });
                vec![role.to_string()]
            }
        };
        for role in roles {
            let m = u.roles.get_mut(&role).unwrap_or_else(|| {
                panic!("{script}: redis.call('{cmd}') on {role}, a role never named: test bug")
            });
            m.0 |= r;
            m.1 |= w;
        }
    }
    u
}

/// Index of the `)` closing the first `(` at or after `from`.
fn close_paren(toks: &Toks, from: usize) -> usize {
    let mut d = 0;
    for (j, (t, _)) in toks.iter().enumerate().skip(from) {
        match t {
            Tok::Punct("(") | Tok::Punct("{") | Tok::Punct("[") => d += 1,
            Tok::Punct(")") | Tok::Punct("}") | Tok::Punct("]") => {
                d -= 1;
                if d == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses")
}

fn depth(toks: &[Tok]) -> i32 {
    toks.iter()
        .map(|t| match t {
            Tok::Punct("(") | Tok::Punct("{") | Tok::Punct("[") => 1,
            Tok::Punct(")") | Tok::Punct("}") | Tok::Punct("]") => -1,
            _ => 0,
        })
        .sum()
}

fn mode(rw: (bool, bool)) -> &'static str {
    match rw {
        (true, false) => "r",
        (false, true) => "w",
        (true, true) => "rw",
        (false, false) => "?",
    }
}

/// The header's `touches:` line as (role, mode) pairs.
fn header_touches(script: &str) -> Vec<(String, String)> {
    let text = read(&format!("{script}.lua"));
    let header = &text[..text.find("]]").expect("header block")];
    let starts: Vec<usize> = (header.lines().enumerate())
        .filter(|(_, l)| l.starts_with("touches:"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 1, "{script}: the header needs one `touches:` field");
    // the field goes on over indented lines, as the header's other fields do
    let field: Vec<&str> = (header.lines().skip(starts[0]).enumerate())
        .take_while(|(i, l)| *i == 0 || l.starts_with(' '))
        .map(|(_, l)| l)
        .collect();
    field.join(" ")["touches:".len()..]
        .split_whitespace()
        .map(|item| {
            let (role, m) = item
                .strip_suffix(')')
                .and_then(|s| s.split_once('('))
                .unwrap_or_else(|| panic!("{script}: touches item {item:?} is not role(mode)"));
            assert!(
                ["r", "w", "rw"].contains(&m),
                "{script}: mode of {role} must be r, w or rw"
            );
            (role.to_string(), m.to_string())
        })
        .collect()
}

fn scripts() -> Vec<String> {
    baton::scripts::ScriptName::ALL
        .iter()
        .map(|s| s.file_stem().to_string())
        .collect()
}

/// Roles in keyset order, then `idem`.
fn canonical(roles: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = roles.collect();
    let rank = |r: &String| {
        baton::keys::ROLES
            .iter()
            .position(|x| x == r)
            .unwrap_or(usize::MAX)
    };
    v.sort_by_key(rank);
    v
}

#[test]
fn every_header_names_exactly_the_keys_its_code_touches() {
    let incs = includes();
    let m = baton::manifest::get();
    let mut bad = Vec::new();
    for s in scripts() {
        let u = analyse(&s, &incs);
        let computed: Vec<(String, String)> = canonical(u.roles.keys().cloned())
            .into_iter()
            .map(|r| {
                let md = mode(u.roles[&r]);
                (r, md.to_string())
            })
            .collect();
        let header = header_touches(&s);
        if header != computed {
            let line: Vec<String> = computed.iter().map(|(r, m)| format!("{r}({m})")).collect();
            bad.push(format!(
                "{s}: header says\n  touches: {}\nthe code touches\n  touches: {}",
                header
                    .iter()
                    .map(|(r, m)| format!("{r}({m})"))
                    .collect::<Vec<_>>()
                    .join(" "),
                line.join(" ")
            ));
        }
        let spec = &m.scripts[&s];
        if spec.read_only {
            assert!(
                computed.iter().all(|(_, m)| m == "r"),
                "{s} is read-only but writes: {computed:?}"
            );
        }
        let roles: Vec<String> = header.iter().map(|(r, _)| r.clone()).collect();
        assert_eq!(
            spec.touches, roles,
            "{s}: lua/manifest.json touches vs the header"
        );
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n\n"));
}

/// The analysis itself: a script that starts using a key, directly or through an include
/// function, is caught; a key named in an error message is not a use.
#[test]
fn a_new_key_use_is_seen() {
    let incs = includes();
    let trim = read("trim.lua");
    let touched = |extra: &str| {
        let u = analyse_text("trim", &format!("{trim}{extra}\n"), &incs);
        u.roles
            .into_iter()
            .map(|(r, m)| format!("{r}({})", mode(m)))
            .collect::<Vec<_>>()
    };
    let base = touched("");
    assert!(!base
        .iter()
        .any(|r| r.starts_with("workers") || r.starts_with("wstat")));
    assert!(touched("redis.call('HGET', K_WORKERS, 'w')").contains(&"workers(r)".to_string()));
    assert!(touched("forget_worker_stats('w')").contains(&"wstat(w)".to_string()));
    let unknown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        touched("local x = {K_DONE}\nredis.call('ZADD', x[1], 1, 'a')")
    }));
    assert!(
        unknown.is_err(),
        "a key the analysis cannot attribute must fail the test"
    );
    assert_eq!(touched("bail('BADARG', K_WORKERS)"), base);
}

#[test]
fn every_script_includes_only_what_it_uses() {
    let incs = includes();
    for s in scripts() {
        let listed = closure(&incs, &own_includes(&read(&format!("{s}.lua"))));
        let used: Vec<String> = analyse(&s, &incs).files.into_iter().collect();
        let needed = closure(&incs, &used);
        assert_eq!(listed, needed, "{s}: includes listed (with theirs) vs needed");
    }
}
