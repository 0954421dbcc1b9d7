//! The import graph of `src/`, held to the pipeline: keys -> document -> store -> server/watcher ->
//! app. Data and imports flow one way.
//!
//! The rules, each a test below:
//! 1. Ranks: every top-level module has a place in `RANKS`; a module may import only modules of
//!    a lower rank (not one above it, nor beside it). A new module must be given its place.
//! 2. Configuration (`cli`, `config`) may import only the inputs it describes
//!    (`CONFIGURATION_MAY_IMPORT`), never the runtime.
//! 3. Inside folders, `INSIDE_FOLDERS`: in `src/server/`, the HTTP/2 engine never imports the
//!    HTTP/1.1 loop; the HTTP/1.1 loop imports from the HTTP/2 engine only its `PREFACE` (h2c
//!    sniffing); the seams under the engines (transport, output, limits) import no engine.
//! 4. No cycle between the sibling modules of any folder (`server::{http1, http2, tls, ...}`,
//!    `server::http2::{frame, hpack, ...}`, the top level, ...), test modules included.
//! 5. Every `pub mod` of `src/lib.rs` has its bullet, [`name`], in lib.rs's module map.
//!
//! Known violations sit in `EXCEPTIONS`, one file and one import each, with the reason; an entry
//! that no longer matches anything fails, so the list only shrinks.
//!
//! What counts as an import: every path that names a module of this crate, in `use` declarations
//! (any visibility, at any depth: inside functions and `mod tests`; brace groups, nested; `as`
//! renames; globs; `self`) and in code (`crate::x::f()`, `super::y::T`, `self::z::C`, and a child
//! module named from its parent, `http1::serve`). `super::` and `self::` are resolved from the
//! module the path is written in, inline modules included: `super` in `src/server/http1.rs` is
//! `crate::server`, in `src/server/mod.rs` it is `crate`. Comments, doc comments and literals are
//! skipped. A path counts as an import of the deepest module it names: `crate::server::Foo` is
//! an import of `server`, even when `server` re-exports `Foo` from one of its own modules.
//! `src/main.rs` is a crate of its own (it imports `issuerd::`) and is not scanned.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// The rules.

/// Each top-level module and its place in the pipeline; a module may import only modules with a
/// lower rank.
const RANKS: &[(&str, u8)] = &[
    // Inputs and leaves.
    ("keys", 0),
    ("issuer", 0),
    ("shutdown", 0),
    ("log", 0),
    ("retry", 0),
    // IAM ARNs (role, account, partition), parsed where they enter: a leaf.
    ("arn", 0),
    // What issuerd's HTTPS clients trust (public roots, --ca-file, a pinned certificate).
    ("trust", 0),
    // Which ServiceAccount may assume which IAM role (kOps's map): an input, like the keys; the
    // webhook, `aws` and the STS read it.
    ("iam_map", 0),
    // Self-contained tools: a health probe and the IAM thumbprint of a TLS chain.
    // Needs shutdown (also rank 0, but a leaf of it).
    ("listener", 1),
    // keys + issuer -> documents.
    ("document", 1),
    // keys + issuer -> tokens minted, fetched and verified (IRSA).
    ("token", 1),
    // Where the mirror publishes (bucket, keys, settings): a description, like the issuer.
    ("bucket", 1),
    // The serving certificate (pair, live resolver, files): an input like the keys.
    ("tls", 1),
    // The admission webhook's pure core (AdmissionReview, pod mutation): below irsa, whose
    // `pod-env` renders the same env, volume and mount.
    ("webhook", 1),
    // issuerd's own TLS clients (the container health probe, the IAM thumbprint), on tls::client.
    ("probe", 2),
    ("thumbprint", 2),
    // documents -> published snapshots.
    ("store", 2),
    // Tokens -> the IRSA generators and the issuer doctor.
    ("irsa", 2),
    ("check", 2),
    // The Vault JWT auth generator (issuer, like the IRSA generators).
    ("vault", 2),
    // What `serve --dev` generates: the ephemeral key and the local IRSA demo (irsa, token).
    ("dev", 3),
    // Readers and the writer of the store; the STS endpoint, a reader of issuers over HTTP.
    ("server", 3),
    ("watcher", 3),
    // The API server as a key source: a writer of the store, like the watcher.
    ("apiserver", 3),
    ("sts", 3),
    ("mirror", 3),
    // Writes certificates into the live store of the TLS listener (tls), like the watcher.
    ("acme", 3),
    // `aws plan|apply`: the IAM map (iam_map) and the issuer's provider (arn, irsa) -> IAM
    // through the AWS SDK.
    ("aws", 3),
    // Configuration, then the wiring of everything.
    ("cli", 4),
    ("config", 5),
    ("app", 6),
];

/// Configuration describes the inputs; it must not reach into the runtime (store, server, ...).
const CONFIGURATION: [&str; 2] = ["cli", "config"];
/// The inputs configuration may import: modules, or one module inside another
/// (`server::limits`: the settings the engines take, where their defaults live once).
const CONFIGURATION_MAY_IMPORT: [&str; 7] = [
    "cli",
    "issuer",
    "keys",
    "bucket",
    "tls",
    "server::limits",
    "apiserver::settings",
];

/// An import forbidden inside a folder. Paths are below `crate::`, and a module stands for
/// everything inside it.
struct Forbidden {
    importers: &'static [&'static str],
    imported: &'static [&'static str],
    /// Items that may still be imported from the imported module itself (not from its modules).
    except: &'static [&'static str],
    why: &'static str,
}

const INSIDE_FOLDERS: &[Forbidden] = &[
    Forbidden {
        importers: &["server::http2"],
        imported: &["server::http1"],
        except: &[],
        why: "the HTTP/2 engine stands on its own: the HTTP/1.1 loop hands h2c over to it, \
              never the other way",
    },
    Forbidden {
        importers: &["server::http1"],
        imported: &["server::http2"],
        except: &["PREFACE"],
        why: "the HTTP/1.1 loop may name only the HTTP/2 engine's PREFACE (h2c sniffing)",
    },
    Forbidden {
        importers: &["server::transport", "server::output", "server::limits"],
        imported: &[
            "server::http1",
            "server::http2",
            "server::tls",
            "server::service",
        ],
        except: &[],
        why: "the seams under the engines (bytes in and out, limits) know nothing of the engines",
    },
];

/// A known violation, accepted for a reason until it is removed: one rule, one file, one
/// imported module.
struct Exception {
    rule: Rule,
    file: &'static str,
    imports: &'static str,
    why: &'static str,
}

const EXCEPTIONS: &[Exception] = &[];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Ranks,
    Configuration,
    InsideFolders,
}

// ---------------------------------------------------------------------------------------------
// The rules, on the real tree.

#[test]
fn imports_follow_the_ranks() {
    let tree = tree();
    let found = tree.edges.len();
    assert!(
        found > 200,
        "found only {found} imports: is the scan broken?"
    );
    for prefix in ["crate::", "super::", "self::"] {
        assert!(
            tree.edges.iter().any(|e| e.written.starts_with(prefix)),
            "no import written `{prefix}...`: is the scan broken?"
        );
    }
    assert_none(&violations_of(Rule::Ranks, &tree.edges));
}

#[test]
fn configuration_imports_only_inputs() {
    assert_none(&violations_of(Rule::Configuration, &tree().edges));
}

#[test]
fn folders_keep_their_own_rules() {
    assert_none(&violations_of(Rule::InsideFolders, &tree().edges));
}

#[test]
fn no_cycle_between_sibling_modules() {
    assert_none(&cycles(&tree().edges));
}

#[test]
fn every_exception_is_still_needed() {
    let stale: Vec<String> = EXCEPTIONS
        .iter()
        .filter(|x| {
            !violations(&tree().edges)
                .iter()
                .any(|(rule, edge, _)| excepts(x, *rule, edge))
        })
        .map(|x| format!("{:?} {} -> {} ({})", x.rule, x.file, x.imports, x.why))
        .collect();
    assert!(
        stale.is_empty(),
        "these exceptions match nothing any more; remove them from EXCEPTIONS: {stale:#?}"
    );
}

/// Every file under src/ is a module some `mod` declares (so its place, and whether it is test
/// code, are known).
#[test]
fn every_source_file_is_a_declared_module() {
    let tree = tree();
    let undeclared: Vec<_> = tree
        .files
        .iter()
        .filter(|(_, module)| *module != "crate" && !tree.declared.contains(module))
        .collect();
    assert!(undeclared.is_empty(), "no `mod` declares {undeclared:?}");
}

#[test]
fn the_store_knows_nothing_of_http() {
    let store = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store.rs"))
        .unwrap()
        .to_ascii_lowercase();
    for word in ["http1", "http/1", "hyper", "headervalue", "\\r\\n"] {
        assert!(!store.contains(word), "store.rs mentions {word:?}");
    }
}

#[test]
fn lib_rs_maps_every_public_module() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let (modules, missing) = unmapped_modules(&lib);
    assert!(
        modules.len() > 10,
        "found only {modules:?}: is the scan broken?"
    );
    assert!(
        missing.is_empty(),
        "lib.rs's map has no bullet for {missing:?}"
    );
}

fn assert_none(found: &[String]) {
    assert!(found.is_empty(), "{}", found.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The import graph and its checks.

/// One import: a path written in module `from` that names module `to` (and, when it names
/// something inside `to`, `item`).
#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    item: Option<String>,
    file: String,
    line: usize,
    /// The path as written (brace groups spelled out, renames dropped).
    written: String,
    /// Written inside `#[cfg(test)]` code.
    test: bool,
}

impl Edge {
    fn describe(&self) -> String {
        format!(
            "{}:{}: {} imports {} (`{}`)",
            self.file, self.line, self.from, self.to, self.written
        )
    }
}

/// The scanned src/.
struct Tree {
    /// (file, module) of every scanned file.
    files: Vec<(String, String)>,
    /// Every module a `mod` declares.
    declared: BTreeSet<String>,
    edges: Vec<Edge>,
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut paths = Vec::new();
        rust_files(&root.join("src"), &mut paths);
        let mut sources = Vec::new();
        for path in paths {
            let relative = path.strip_prefix(root).unwrap();
            if let Some(module) = module_of(relative.strip_prefix("src").unwrap()) {
                let text = std::fs::read_to_string(&path).unwrap();
                sources.push((relative.display().to_string(), module, text));
            }
        }
        let borrowed: Vec<(&str, &str, &str)> = sources
            .iter()
            .map(|(file, module, text)| (file.as_str(), module.as_str(), text.as_str()))
            .collect();
        build(&borrowed)
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file under src/ holds: `server/http2/mod.rs` is `crate::server::http2`; `None`
/// for `main.rs`, the binary's crate.
fn module_of(relative: &Path) -> Option<String> {
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let file = parts.pop()?;
    match (parts.is_empty(), file.strip_suffix(".rs")?) {
        (true, "main") => return None,
        (true, "lib") | (_, "mod") => {}
        (_, name) => parts.push(name.to_owned()),
    }
    parts.insert(0, "crate".to_owned());
    Some(parts.join("::"))
}

/// The import graph of some files, given as (file, module, source).
fn build(sources: &[(&str, &str, &str)]) -> Tree {
    let scans: Vec<Scan> = sources
        .iter()
        .map(|(file, module, text)| scan(text, module).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect();
    let mut modules: BTreeSet<String> = sources.iter().map(|(_, m, _)| (*m).to_owned()).collect();
    let mut declared = BTreeSet::new();
    let mut test_modules = Vec::new();
    for declaration in scans.iter().flat_map(|s| &s.declared) {
        modules.insert(declaration.module.clone());
        declared.insert(declaration.module.clone());
        if declaration.test {
            test_modules.push(declaration.module.clone());
        }
    }
    let mut edges = Vec::new();
    for ((file, _, _), scan) in sources.iter().zip(&scans) {
        for path in &scan.written {
            let Some((to, item)) = resolve(&path.module, &path.segments, &modules) else {
                continue;
            };
            if to == path.module {
                continue;
            }
            edges.push(Edge {
                from: path.module.clone(),
                to,
                item,
                file: (*file).to_owned(),
                line: path.line,
                written: path.segments.join("::"),
                test: test_modules.iter().any(|t| within(&path.module, t)),
            });
        }
    }
    Tree {
        files: sources
            .iter()
            .map(|(f, m, _)| ((*f).to_owned(), (*m).to_owned()))
            .collect(),
        declared,
        edges,
    }
}

/// `module` is `ancestor` or inside it.
fn within(module: &str, ancestor: &str) -> bool {
    module
        .strip_prefix(ancestor)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// The module `segments`, written in `module`, names, and the item inside it it names (if any);
/// `None` for paths outside this crate (`std::`, `tokio::`, `::pem`, a type's `Self::`, ...).
fn resolve(
    module: &str,
    segments: &[String],
    modules: &BTreeSet<String>,
) -> Option<(String, Option<String>)> {
    let first = segments.first()?.as_str();
    let (mut at, mut rest) = match first {
        "crate" | "$crate" => ("crate".to_owned(), &segments[1..]),
        "self" => (module.to_owned(), &segments[1..]),
        "super" => (module.to_owned(), segments),
        // A child module, named from its parent (`http1::serve` in server/mod.rs).
        _ if modules.contains(&format!("{module}::{first}")) => (module.to_owned(), segments),
        _ => return None,
    };
    while let Some(("super", tail)) = rest.split_first().map(|(s, t)| (s.as_str(), t)) {
        at = at.rsplit_once("::")?.0.to_owned();
        rest = tail;
    }
    for segment in rest {
        let deeper = format!("{at}::{segment}");
        if !modules.contains(&deeper) {
            return Some((at, Some(segment.clone()).filter(|s| s != "*")));
        }
        at = deeper;
    }
    Some((at, None))
}

/// `module` (`crate::a::b`) is, or is inside, one of [`CONFIGURATION_MAY_IMPORT`].
fn configuration_may_import(module: &str) -> bool {
    let path = module.strip_prefix("crate::").unwrap_or(module);
    CONFIGURATION_MAY_IMPORT.iter().any(|allowed| {
        path == *allowed
            || path
                .strip_prefix(allowed)
                .is_some_and(|rest| rest.starts_with("::"))
    })
}

fn top_level(module: &str) -> Option<&str> {
    module.split("::").nth(1)
}

fn rank(module: &str) -> u8 {
    RANKS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, rank)| *rank)
        .unwrap_or_else(|| panic!("module `{module}` has no place in RANKS (tests/it/layers.rs)"))
}

/// Every import that breaks a rule, exceptions included: (rule, import, why).
fn violations(edges: &[Edge]) -> Vec<(Rule, &Edge, String)> {
    let mut found = Vec::new();
    for edge in edges {
        if let (Some(from), Some(to)) = (top_level(&edge.from), top_level(&edge.to))
            && from != to
        {
            let (from_rank, to_rank) = (rank(from), rank(to));
            if to_rank >= from_rank {
                let why = format!("{from} (rank {from_rank}) imports {to} (rank {to_rank})");
                found.push((Rule::Ranks, edge, why));
            }
            if CONFIGURATION.contains(&from) && !configuration_may_import(&edge.to) {
                let why = format!("configuration ({from}) imports {to}, not an input");
                found.push((Rule::Configuration, edge, why));
            }
        }
        for rule in INSIDE_FOLDERS.iter().filter(|rule| forbids(rule, edge)) {
            found.push((Rule::InsideFolders, edge, rule.why.to_owned()));
        }
    }
    found
}

/// `rule` forbids the import `edge`.
fn forbids(rule: &Forbidden, edge: &Edge) -> bool {
    let crate_path = |m: &&str| format!("crate::{m}");
    let excepted = |module: &str| {
        edge.to == module && (edge.item.as_deref()).is_some_and(|item| rule.except.contains(&item))
    };
    rule.importers
        .iter()
        .map(crate_path)
        .any(|m| within(&edge.from, &m))
        && (rule.imported.iter().map(crate_path)).any(|m| within(&edge.to, &m) && !excepted(&m))
}

fn excepts(exception: &Exception, rule: Rule, edge: &Edge) -> bool {
    exception.rule == rule && exception.file == edge.file && exception.imports == edge.to
}

fn violations_of(rule: Rule, edges: &[Edge]) -> Vec<String> {
    violations(edges)
        .into_iter()
        .filter(|(r, edge, _)| *r == rule && !EXCEPTIONS.iter().any(|x| excepts(x, *r, edge)))
        .map(|(_, edge, why)| format!("{}: {why}", edge.describe()))
        .collect()
}

/// Each import cycle between the sibling modules of a folder, named with the imports that make
/// it.
fn cycles(edges: &[Edge]) -> Vec<String> {
    // An import between two modules neither of which contains the other is one between two
    // siblings of their closest common folder: server::http2::frame -> server::http1 is
    // http2 -> http1 in crate::server.
    let mut folders: BTreeMap<String, BTreeMap<(String, String), &Edge>> = BTreeMap::new();
    for edge in edges {
        if within(&edge.from, &edge.to) || within(&edge.to, &edge.from) {
            continue;
        }
        let (from, to): (Vec<&str>, Vec<&str>) = (
            edge.from.split("::").collect(),
            edge.to.split("::").collect(),
        );
        let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        folders
            .entry(from[..common].join("::"))
            .or_default()
            .entry((from[common].to_owned(), to[common].to_owned()))
            .or_insert(edge);
    }
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    for (folder, graph) in &folders {
        for (start, _) in graph.keys() {
            let Some(mut cycle) = shortest_cycle(graph, start) else {
                continue;
            };
            let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap();
            cycle.rotate_left(first);
            if !seen.insert((folder, cycle.clone())) {
                continue;
            }
            let mut text = format!("import cycle in {folder}: {}", cycle.join(" -> "));
            text.push_str(&format!(" -> {}", cycle[0]));
            for (i, from) in cycle.iter().enumerate() {
                let to = cycle[(i + 1) % cycle.len()];
                let edge = graph[&(from.to_string(), to.to_string())];
                text.push_str(&format!("\n    {}", edge.describe()));
            }
            found.push(text);
        }
    }
    found
}

/// The shortest import path from `start` back to itself: [start, ..., last] (last imports start).
fn shortest_cycle<'a>(
    graph: &'a BTreeMap<(String, String), &Edge>,
    start: &'a str,
) -> Option<Vec<&'a str>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for (_, next) in graph.keys().filter(|(from, _)| from == node) {
            if next == start {
                let mut path = vec![node];
                while let Some(&up) = parent.get(path.last().unwrap()) {
                    path.push(up);
                }
                if *path.last().unwrap() != start {
                    path.push(start);
                }
                path.reverse();
                return Some(path);
            }
            if !parent.contains_key(next.as_str()) {
                parent.insert(next.as_str(), node);
                queue.push_back(next.as_str());
            }
        }
    }
    None
}

/// The `pub mod`s of lib.rs, and those its module doc comment has no [`name`] for.
fn unmapped_modules(lib: &str) -> (Vec<&str>, Vec<&str>) {
    let map: String = lib
        .lines()
        .filter(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').trim())
        .collect();
    let missing = modules
        .iter()
        .copied()
        .filter(|m| !map.contains(&format!("[`{m}`]")))
        .collect();
    (modules, missing)
}

// ---------------------------------------------------------------------------------------------
// The scanner: the paths a source file writes, and the modules it declares.

/// A path as written, and the module (inline modules included) it is written in.
#[derive(Debug)]
struct Written {
    module: String,
    /// `crate`, `self`, `super`, names; `*` for a glob; an empty first segment for `::name`.
    segments: Vec<String>,
    line: usize,
}

/// A `mod name;` or `mod name { ... }`.
#[derive(Debug)]
struct Declared {
    module: String,
    /// Under a `#[cfg(test)]`-like attribute.
    test: bool,
}

#[derive(Debug, Default)]
struct Scan {
    written: Vec<Written>,
    declared: Vec<Declared>,
}

/// Every path `source`, the file of `module`, writes that starts a path (`use` trees spelled out
/// into one path per leaf; paths in code up to their last `::name`), and every `mod` it
/// declares.
fn scan(source: &str, module: &str) -> Result<Scan, String> {
    let tokens = lex(source)?;
    let word = |i: usize| match tokens.get(i) {
        Some(Lexed {
            token: Token::Word(w),
            ..
        }) => Some(w.as_str()),
        _ => None,
    };
    let is = |i: usize, token: Token| tokens.get(i).is_some_and(|t| t.token == token);
    let mut out = Scan::default();
    // The module open at each depth of braces: (module, the depth inside its braces).
    let mut open = vec![(module.to_owned(), 0)];
    let mut depth: usize = 0;
    let mut i = 0;
    while i < tokens.len() {
        let here = open.last().unwrap().0.clone();
        let line = tokens[i].line;
        match (&tokens[i].token, word(i + 1)) {
            (Token::Punct('{'), _) => depth += 1,
            (Token::Punct('}'), _) => {
                if open.len() > 1 && open.last().unwrap().1 == depth {
                    open.pop();
                }
                depth = depth
                    .checked_sub(1)
                    .ok_or(format!("line {line}: unbalanced `}}`"))?;
            }
            (Token::Word(w), Some(name)) if w == "mod" => {
                let child = format!("{here}::{name}");
                out.declared.push(Declared {
                    module: child.clone(),
                    test: under_cfg_test(&tokens, i),
                });
                i += 1;
                if is(i + 1, Token::Punct('{')) {
                    depth += 1;
                    open.push((child, depth));
                    i += 1;
                }
            }
            // `use` (but not the `use<'a>` of an `impl Trait + use<'a>`).
            (Token::Word(w), _) if w == "use" && !is(i + 1, Token::Punct('<')) => {
                let mut leaves = Vec::new();
                let end = use_tree(&tokens, i + 1, Vec::new(), &mut leaves)
                    .map_err(|e| format!("line {line}: cannot read this `use`: {e}"))?;
                if !is(end, Token::Punct(';')) {
                    return Err(format!("line {line}: this `use` does not end with `;`"));
                }
                out.written
                    .extend(leaves.into_iter().map(|(segments, line)| Written {
                        module: here.clone(),
                        segments,
                        line,
                    }));
                i = end;
            }
            // The start of a path in code: `name::`, not after `::` (a path's tail, or `::name`),
            // nor a visibility's `pub(in path)`.
            (Token::Word(w), _)
                if is(i + 1, Token::PathSep)
                    && !(i > 0 && is(i - 1, Token::PathSep))
                    && !(word(i.wrapping_sub(1)) == Some("in")
                        && is(i.wrapping_sub(2), Token::Punct('('))) =>
            {
                let mut segments = vec![w.clone()];
                while is(i + 1, Token::PathSep) {
                    let Some(next) = word(i + 2) else { break };
                    segments.push(next.to_owned());
                    i += 2;
                }
                out.written.push(Written {
                    module: here,
                    segments,
                    line: tokens[i].line,
                });
            }
            _ => {}
        }
        i += 1;
    }
    if depth != 0 {
        return Err("unbalanced braces".to_owned());
    }
    Ok(out)
}

/// Reads one use tree at `tokens[i]` under `prefix`, pushing each leaf as a full path with the
/// line of its last name; returns the index after the tree.
fn use_tree(
    tokens: &[Lexed],
    mut i: usize,
    mut path: Vec<String>,
    leaves: &mut Vec<(Vec<String>, usize)>,
) -> Result<usize, String> {
    let at = |i: usize| tokens.get(i).map(|t| &t.token);
    if at(i) == Some(&Token::PathSep) {
        path.push(String::new());
        i += 1;
    }
    loop {
        match at(i) {
            Some(Token::Word(name)) => {
                path.push(name.clone());
                let line = tokens[i].line;
                i += 1;
                if at(i) == Some(&Token::PathSep) {
                    i += 1;
                    continue;
                }
                if at(i) == Some(&Token::Word("as".to_owned())) {
                    i += 2;
                }
                // `a::{self}` is `a`.
                if path.len() > 1 && path.last().is_some_and(|s| s == "self") {
                    path.pop();
                }
                leaves.push((path, line));
                return Ok(i);
            }
            Some(Token::Punct('*')) => {
                path.push("*".to_owned());
                leaves.push((path, tokens[i].line));
                return Ok(i + 1);
            }
            Some(Token::Punct('{')) => {
                i += 1;
                loop {
                    if at(i) == Some(&Token::Punct('}')) {
                        return Ok(i + 1);
                    }
                    i = use_tree(tokens, i, path.clone(), leaves)?;
                    match at(i) {
                        Some(Token::Punct(',')) => i += 1,
                        Some(Token::Punct('}')) => {}
                        other => return Err(format!("`,` or `}}` expected, found {other:?}")),
                    }
                }
            }
            other => return Err(format!("a name, `*` or `{{` expected, found {other:?}")),
        }
    }
}

/// The `mod` at `tokens[i]` has an attribute `#[cfg(...test...)]` (without `not`), before its
/// visibility.
fn under_cfg_test(tokens: &[Lexed], i: usize) -> bool {
    let mut j = i;
    // Skip the visibility: `pub`, `pub(crate)`, `pub(in path)`.
    if j > 0 && tokens[j - 1].token == Token::Punct(')') {
        while j > 0 && tokens[j - 1].token != Token::Punct('(') {
            j -= 1;
        }
        j = j.saturating_sub(1);
    }
    if j > 0 && tokens[j - 1].token == Token::Word("pub".to_owned()) {
        j -= 1;
    }
    // Each attribute before it, `#[...]`, last first.
    let mut test = false;
    while j > 0 && tokens[j - 1].token == Token::Punct(']') {
        let close = j - 1;
        let mut open = close;
        let mut nesting = 0;
        loop {
            match tokens[open].token {
                Token::Punct(']') => nesting += 1,
                Token::Punct('[') => nesting -= 1,
                _ => {}
            }
            if nesting == 0 || open == 0 {
                break;
            }
            open -= 1;
        }
        let words: Vec<&Token> = tokens[open + 1..close].iter().map(|t| &t.token).collect();
        let has = |w: &str| words.contains(&&Token::Word(w.to_owned()));
        if words.first() == Some(&&Token::Word("cfg".to_owned())) && has("test") && !has("not") {
            test = true;
        }
        j = open.saturating_sub(1); // the `#`
    }
    test
}

// ---------------------------------------------------------------------------------------------
// The lexer: just enough of Rust's tokens to find paths outside comments and literals.

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// An identifier or keyword; `r#name` and a macro's `$crate` or `$name` keep their prefix.
    Word(String),
    /// `::`
    PathSep,
    /// Any other punctuation, one character at a time.
    Punct(char),
    /// A string, character or number literal, or a lifetime (what it says does not matter).
    Literal,
}

#[derive(Debug)]
struct Lexed {
    token: Token,
    line: usize,
}

fn lex(source: &str) -> Result<Vec<Lexed>, String> {
    let s: Vec<char> = source.chars().collect();
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let ident_start = |c: char| c.is_alphabetic() || c == '_';
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < s.len() {
        let (c, start_line) = (s[i], line);
        let token = match c {
            '\n' => {
                line += 1;
                i += 1;
                continue;
            }
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            // Comments, doc comments included.
            '/' if at(i + 1) == '/' => {
                while i < s.len() && s[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if at(i + 1) == '*' => {
                let mut nesting = 0;
                loop {
                    if i >= s.len() {
                        return Err(format!("line {start_line}: unterminated comment"));
                    }
                    if s[i] == '/' && at(i + 1) == '*' {
                        (nesting, i) = (nesting + 1, i + 2);
                    } else if s[i] == '*' && at(i + 1) == '/' {
                        (nesting, i) = (nesting - 1, i + 2);
                        if nesting == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(s[i] == '\n');
                        i += 1;
                    }
                }
                continue;
            }
            '"' => {
                i = string_end(&s, i, &mut line)?;
                Token::Literal
            }
            '\'' => {
                i = char_or_lifetime_end(&s, i);
                Token::Literal
            }
            ':' if at(i + 1) == ':' => {
                i += 2;
                Token::PathSep
            }
            '$' if ident_start(at(i + 1)) => {
                let start = i;
                i += 1;
                while ident(at(i)) {
                    i += 1;
                }
                Token::Word(s[start..i].iter().collect())
            }
            c if ident_start(c) => {
                let start = i;
                while ident(at(i)) {
                    i += 1;
                }
                let word: String = s[start..i].iter().collect();
                let raw_string_follows = {
                    let mut j = i;
                    while at(j) == '#' {
                        j += 1;
                    }
                    at(j) == '"'
                };
                match word.as_str() {
                    "r" | "br" | "cr" if raw_string_follows => {
                        i = raw_string_end(&s, i, &mut line)?;
                        Token::Literal
                    }
                    "b" | "c" if at(i) == '"' => {
                        i = string_end(&s, i, &mut line)?;
                        Token::Literal
                    }
                    "b" if at(i) == '\'' => {
                        i = char_or_lifetime_end(&s, i);
                        Token::Literal
                    }
                    "r" if at(i) == '#' && ident_start(at(i + 1)) => {
                        i += 1;
                        while ident(at(i)) {
                            i += 1;
                        }
                        Token::Word(s[start..i].iter().collect())
                    }
                    _ => Token::Word(word),
                }
            }
            c if c.is_ascii_digit() => {
                while ident(at(i)) {
                    i += 1;
                }
                Token::Literal
            }
            c => {
                i += 1;
                Token::Punct(c)
            }
        };
        out.push(Lexed {
            token,
            line: start_line,
        });
    }
    Ok(out)
}

/// The index after the string literal whose opening `"` is at `i`.
fn string_end(s: &[char], mut i: usize, line: &mut usize) -> Result<usize, String> {
    let start_line = *line;
    i += 1;
    while i < s.len() {
        match s[i] {
            '\\' => {
                *line += usize::from(s.get(i + 1) == Some(&'\n'));
                i += 2;
            }
            '"' => return Ok(i + 1),
            c => {
                *line += usize::from(c == '\n');
                i += 1;
            }
        }
    }
    Err(format!("line {start_line}: unterminated string"))
}

/// The index after the raw string whose `#`s (or `"`) start at `i`.
fn raw_string_end(s: &[char], mut i: usize, line: &mut usize) -> Result<usize, String> {
    let start_line = *line;
    let mut hashes = 0;
    while s.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1; // the opening `"`
    while i < s.len() {
        if s[i] == '"' && (1..=hashes).all(|k| s.get(i + k) == Some(&'#')) {
            return Ok(i + 1 + hashes);
        }
        *line += usize::from(s[i] == '\n');
        i += 1;
    }
    Err(format!("line {start_line}: unterminated raw string"))
}

/// The index after the character literal (`'x'`, `'\n'`, `'\u{1F600}'`) or lifetime (`'a`)
/// whose `'` is at `i`.
fn char_or_lifetime_end(s: &[char], i: usize) -> usize {
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    if at(i + 1) == '\\' {
        let mut j = i + 3;
        while j < s.len() && s[j] != '\'' {
            j += 1;
        }
        return j + 1;
    }
    if at(i + 2) == '\'' {
        return i + 3;
    }
    let mut j = i + 1;
    while at(j).is_alphanumeric() || at(j) == '_' {
        j += 1;
    }
    j
}

// ---------------------------------------------------------------------------------------------
// The scanner and the checks, on small sources: each must be able to fail.

/// The imports `source`, the file of `module`, makes, as `from -> to`, given the other modules
/// of the crate.
fn imports(module: &str, source: &str, others: &[&str]) -> Vec<String> {
    let mut sources = vec![("test.rs", module, source)];
    sources.extend(others.iter().map(|m| ("other.rs", *m, "")));
    let edges: BTreeSet<String> = build(&sources)
        .edges
        .iter()
        .map(|e| format!("{} -> {}", e.from, e.to))
        .collect();
    edges.into_iter().collect()
}

#[test]
fn parser_reads_brace_groups() {
    assert_eq!(
        imports(
            "crate::server",
            "use crate::{listener, shutdown};",
            &["crate::listener", "crate::shutdown"]
        ),
        [
            "crate::server -> crate::listener",
            "crate::server -> crate::shutdown"
        ]
    );
}

#[test]
fn parser_reads_nested_braces_renames_and_self() {
    let source = "use crate::{a::{b, c::D}, d as e, self, f::{self as g}};";
    let others = [
        "crate::a",
        "crate::a::b",
        "crate::a::c",
        "crate::d",
        "crate::f",
    ];
    assert_eq!(
        imports("crate::x", source, &others),
        [
            "crate::x -> crate",
            "crate::x -> crate::a::b",
            "crate::x -> crate::a::c",
            "crate::x -> crate::d",
            "crate::x -> crate::f",
        ]
    );
}

#[test]
fn parser_reads_every_kind_of_use() {
    let source = "
        pub use super::a::A;
        pub(crate) use super::b;
        pub(super) use super::{
            c,
            d::{
                D,
            },
        };
        fn f() {
            use super::e::*;
        }
        impl T for U {
            fn g() -> impl Sized + use<'a> { use crate::h as _; }
        }
    ";
    let others = [
        "crate::a", "crate::b", "crate::c", "crate::d", "crate::e", "crate::h",
    ];
    assert_eq!(
        imports("crate::x", source, &others),
        [
            "crate::x -> crate::a",
            "crate::x -> crate::b",
            "crate::x -> crate::c",
            "crate::x -> crate::d",
            "crate::x -> crate::e",
            "crate::x -> crate::h",
        ]
    );
}

#[test]
fn parser_resolves_super_and_self_from_the_file() {
    let server = [
        "crate::server",
        "crate::server::http1",
        "crate::server::http2",
    ];
    let listener = ["crate::listener"];
    // In server/http1.rs, `super` is crate::server.
    assert_eq!(
        imports(
            "crate::server::http1",
            "use super::http2::PREFACE;",
            &server
        ),
        ["crate::server::http1 -> crate::server::http2"]
    );
    // In server/mod.rs, `super` is crate, `self` is crate::server.
    assert_eq!(
        imports(
            "crate::server",
            "use super::listener; use self::http1::Outcome;",
            &[&server[1..], &listener[..]].concat()
        ),
        [
            "crate::server -> crate::listener",
            "crate::server -> crate::server::http1"
        ]
    );
    let connection = "crate::server::http2::connection";
    assert_eq!(
        imports(connection, "use super::super::http1::X;", &server),
        ["crate::server::http2::connection -> crate::server::http1"]
    );
}

#[test]
fn parser_follows_inline_modules() {
    let source = "
        fn f() {}
        #[cfg(test)]
        mod tests {
            use super::*;
            use super::super::b::X;
        }
        pub(crate) mod inner { use super::super::c; }
        use super::d;
    ";
    let others = ["crate::a", "crate::a::b", "crate::a::c", "crate::a::d"];
    assert_eq!(
        imports("crate::a::x", source, &others),
        [
            "crate::a::x -> crate::a::d",
            "crate::a::x::inner -> crate::a::c",
            "crate::a::x::tests -> crate::a::b",
            "crate::a::x::tests -> crate::a::x",
        ]
    );
    let tree = build(&[("x.rs", "crate::a::x", source), ("b.rs", "crate::a::b", "")]);
    let test: Vec<_> = tree
        .edges
        .iter()
        .map(|e| (e.from.as_str(), e.test))
        .collect();
    assert!(test.contains(&("crate::a::x::tests", true)), "{test:?}");
    assert!(test.contains(&("crate::a::x::inner", false)), "{test:?}");
}

#[test]
fn parser_reads_globs() {
    assert_eq!(
        imports(
            "crate::x",
            "use crate::a::*; use super::b::{*};",
            &["crate::a", "crate::b"]
        ),
        ["crate::x -> crate::a", "crate::x -> crate::b"]
    );
}

#[test]
fn parser_reads_paths_in_code() {
    let source = "
        fn f(x: super::b::T) -> self::c::U {
            crate::a::f();
            c::g();
            $crate::d::h!();
            let _ = <X as super::e::Y>::new;
        }
        pub(in crate::a) fn g() {}
        pub(super) fn h() {}
    ";
    let others = [
        "crate::a",
        "crate::b",
        "crate::m::c",
        "crate::d",
        "crate::e",
    ];
    assert_eq!(
        imports("crate::m", source, &others),
        [
            "crate::m -> crate::a",
            "crate::m -> crate::b",
            "crate::m -> crate::d",
            "crate::m -> crate::e",
            "crate::m -> crate::m::c",
        ]
    );
}

#[test]
fn parser_skips_comments_and_literals() {
    let source = r####"
        //! use crate::a;
        /// use crate::b;
        // crate::c::f()
        /* use crate::d; /* nested */ crate::d::x(); */
        const S: &str = "use crate::e; \" crate::e::x";
        const R: &str = r#"crate::f::g "quoted" "#;
        const B: &[u8] = b"crate::f::h";
        const Q: char = '"';
        const E: char = '\'';
        fn l<'a>(x: &'a str) -> &'static str { x }
        use crate::g; // only this one
    "####;
    let others = [
        "crate::a", "crate::b", "crate::c", "crate::d", "crate::e", "crate::f", "crate::g",
    ];
    assert_eq!(
        imports("crate::x", source, &others),
        ["crate::x -> crate::g"]
    );
}

#[test]
fn parser_leaves_other_crates_alone() {
    let source = "
        use std::io;
        use tokio::net::TcpListener;
        use pem::Pem;
        use status::Status;
        fn f() { ::spki::parse(); Self::new(); tokio::spawn(x); }
    ";
    let others = ["crate::keys", "crate::keys::status", "crate::keys::spki"];
    // `status` is a child of keys; `pem` is none, and `::spki` is the crate beside the child.
    assert_eq!(
        imports("crate::keys", source, &others),
        ["crate::keys -> crate::keys::status"]
    );
}

#[test]
fn parser_says_what_it_cannot_read() {
    assert!(scan("use crate::{a, b", "crate").is_err());
    assert!(scan("use crate::a fn", "crate").is_err());
    assert!(scan("const S: &str = \"open", "crate").is_err());
}

#[test]
fn rules_catch_violations() {
    let tree = build(&[
        (
            "src/keys/mod.rs",
            "crate::keys",
            "use crate::{store, document::Document};",
        ),
        ("src/store.rs", "crate::store", ""),
        ("src/document.rs", "crate::document", ""),
        (
            "src/cli.rs",
            "crate::cli",
            "use crate::keys; fn f() { crate::store::x(); }",
        ),
        (
            "src/server/mod.rs",
            "crate::server",
            "mod http1; mod http2; mod output;",
        ),
        (
            "src/server/http1.rs",
            "crate::server::http1",
            "use super::http2::PREFACE; use super::http2::Frame; use super::http2::frame::X;",
        ),
        (
            "src/server/http2/mod.rs",
            "crate::server::http2",
            "mod frame;",
        ),
        (
            "src/server/http2/frame.rs",
            "crate::server::http2::frame",
            "use crate::server::http1::Outcome;",
        ),
        (
            "src/server/output.rs",
            "crate::server::output",
            "use super::{http2, limits};",
        ),
        ("src/server/limits.rs", "crate::server::limits", ""),
    ]);
    let found: Vec<String> = violations(&tree.edges)
        .iter()
        .map(|(rule, edge, _)| format!("{rule:?} {}:{} {}", edge.file, edge.line, edge.written))
        .collect();
    assert_eq!(
        found,
        [
            "Ranks src/keys/mod.rs:1 crate::store",
            "Ranks src/keys/mod.rs:1 crate::document::Document",
            "Configuration src/cli.rs:1 crate::store::x",
            "InsideFolders src/server/http1.rs:1 super::http2::Frame",
            "InsideFolders src/server/http1.rs:1 super::http2::frame::X",
            "InsideFolders src/server/http2/frame.rs:1 crate::server::http1::Outcome",
            "InsideFolders src/server/output.rs:1 super::http2",
        ]
    );
}

#[test]
fn cycles_are_found_and_named() {
    let tree = build(&[
        ("src/a.rs", "crate::a", "use crate::b::X;"),
        ("src/b.rs", "crate::b", "fn f() { super::c::g(); }"),
        ("src/c.rs", "crate::c", "use crate::{a, d};"),
        ("src/d.rs", "crate::d", ""),
        ("src/s/mod.rs", "crate::s", "mod one; mod two;"),
        ("src/s/one.rs", "crate::s::one", "use super::two::inner::Y;"),
        (
            "src/s/two/mod.rs",
            "crate::s::two",
            "mod inner; use super::super::s::one;",
        ),
        (
            "src/s/two/inner.rs",
            "crate::s::two::inner",
            "use crate::s::Z;",
        ),
    ]);
    let found = cycles(&tree.edges);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("import cycle in crate: a -> b -> c -> a\n"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("src/b.rs:1: crate::b imports crate::c (`super::c::g`)"));
    assert!(
        found[1].starts_with("import cycle in crate::s: one -> two -> one\n"),
        "{}",
        found[1]
    );
    // A module importing its parent, or its child, is no cycle.
    let tree = build(&[
        ("src/a/mod.rs", "crate::a", "mod b; use self::b::X;"),
        ("src/a/b.rs", "crate::a::b", "use super::Y;"),
    ]);
    assert_eq!(cycles(&tree.edges), Vec::<String>::new());
}

#[test]
fn lib_map_check_sees_a_missing_bullet() {
    let lib = "//! - [`a`]: first.\n//! - [`c`]: third.\n\npub mod a;\npub mod b;\nmod c;\n";
    assert_eq!(unmapped_modules(lib), (vec!["a", "b"], vec!["b"]));
}
