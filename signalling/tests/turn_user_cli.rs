//! `sotto-signald turn-user add|remove|list`: the admin commands that
//! manage sotto-relay's database users (password from the environment or
//! standard input, never argv).

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

fn signald(db: &str, args: &[&str], env_pw: Option<&str>, stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sotto-signald"));
    cmd.args(["--database-url", db, "turn-user"])
        .args(args)
        .env_remove("SOTTO_TURN_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(pw) = env_pw {
        cmd.env("SOTTO_TURN_PASSWORD", pw);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn add_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let add =
        |user: &str, env_pw, stdin| signald(&db, &["add", "--realm", "r", user], env_pw, stdin);
    assert!(add("alice", Some("pw"), "").status.success());
    assert!(add("bob", None, "from-stdin\n").status.success());
    assert!(!add("carol", None, "\n").status.success(), "empty password");
    assert!(
        signald(&db, &["add", "--realm", "other", "dave"], Some("pw"), "")
            .status
            .success()
    );
    let list = signald(&db, &["list", "--realm", "r"], None, "");
    assert_eq!(stdout(&list), "alice\nbob\n");
    let rm = signald(&db, &["remove", "--realm", "r", "alice"], None, "");
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    let rm = signald(&db, &["remove", "--realm", "r", "alice"], None, "");
    assert!(!rm.status.success(), "removing twice fails");
    let list = signald(&db, &["list", "--realm", "r"], None, "");
    assert_eq!(stdout(&list), "bob\n");
    // The stored key is that of the password given on stdin.
    let key: String = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::{Connection as _, Row as _};
            let mut c = sqlx::SqliteConnection::connect(&db).await.unwrap();
            let row = sqlx::query("SELECT key_md5 FROM turn_users WHERE username = 'bob'")
                .fetch_one(&mut c)
                .await
                .unwrap();
            row.try_get(0).unwrap()
        });
    assert_eq!(
        key,
        sotto_signalling::turn::long_term_keys("bob", "r", "from-stdin").0
    );
}

/// Without `--config` or `--database-url`, `turn-user` refuses rather than
/// make up `./signald.db`; the flags may follow the subcommand.
#[test]
fn the_database_is_named_and_flags_may_follow_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sotto-signald"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("SOTTO_SIGNALD_CONFIG")
            .env_remove("SOTTO_SIGNALD_DATABASE_URL")
            .env("SOTTO_TURN_PASSWORD", "pw")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["turn-user", "list", "--realm", "r"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--config") && err.contains("--database-url"),
        "{err}"
    );
    assert!(
        !dir.path().join("signald.db").exists(),
        "made up ./signald.db"
    );

    let db = format!("sqlite://{}", dir.path().join("relay.db").display());
    let cfg = dir.path().join("signald.toml");
    std::fs::write(&cfg, format!("database_url = \"{db}\"\n")).unwrap();
    let add = run(&[
        "turn-user",
        "add",
        "--realm",
        "r",
        "alice",
        "--database-url",
        &db,
    ]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    // Which database was used is said.
    assert!(String::from_utf8_lossy(&add.stderr).contains("relay.db"));
    let list = run(&[
        "turn-user",
        "list",
        "--realm",
        "r",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert_eq!(stdout(&list), "alice\n");
    assert!(!dir.path().join("signald.db").exists());
}
