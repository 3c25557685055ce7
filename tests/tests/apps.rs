//! Ordinary applications on a zpmfs mount: cp -a, tar, git, sqlite3, make + cc, rm -rf, df.

use std::fs;
use std::process::Command;

use zpmfs_tests::*;

#[test]
fn cp_a_of_a_few_thousand_files_keeps_contents_modes_and_mtimes() {
    require_tool("cp");
    require_tool("sha256sum");
    let t = TestFs::with_size("cp-tree", "256M");
    let src = ScratchDir::under("/dev/shm".as_ref(), "cp-src");
    make_tree(&src.path, 3000, 1);
    let expected = manifest(&src.path);
    assert!(expected.len() > 3000, "the generated tree has {} entries", expected.len());

    run(Command::new("cp").arg("-a").arg(&src.path).arg(t.path("copy"))).ok();
    assert_same_tree(&expected, &manifest(&t.path("copy")));

    // And back out again: what a user gets from the mount is what went in.
    let back = ScratchDir::under("/dev/shm".as_ref(), "cp-back");
    run(Command::new("cp").arg("-a").arg(t.path("copy")).arg(back.path.join("b"))).ok();
    assert_same_tree(&expected, &manifest(&back.path.join("b")));
}

#[test]
fn tar_create_and_extract_round_trip() {
    require_tool("tar");
    let t = TestFs::new("tar");
    fs::create_dir(t.path("src")).unwrap();
    make_tree(&t.path("src"), 400, 2);
    let expected = manifest(&t.path("src"));
    sh(
        &t.mnt,
        "tar --format=posix -cf archive.tar src
         tar -tf archive.tar | grep 'src/dir3/sub4/' >/dev/null
         mkdir out
         tar -xpf archive.tar -C out
         tar -czf archive.tgz src && tar -tzf archive.tgz >/dev/null",
    );
    assert_same_tree(&expected, &manifest(&t.path("out/src")));
}

#[test]
fn git_init_add_commit_log_gc() {
    require_tool("git");
    let t = TestFs::new("git");
    fs::create_dir(t.path("repo")).unwrap();
    make_tree(&t.path("repo"), 200, 3);
    let out = sh(
        &t.path("repo"),
        "export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
         g() { git -c user.name='zpmfs test' -c user.email=test@example.com -c init.defaultBranch=main \"$@\"; }
         g init -q
         g add -A
         g commit -q -m 'first commit'
         echo change >> 'name with spaces.txt'
         rm -r dir9
         g mv dir8 moved
         g commit -q -a -m 'second commit'
         g gc -q --aggressive
         g fsck --full --strict
         g status --porcelain
         echo LOG
         g log --format=%s",
    );
    let log = out.split("LOG\n").nth(1).expect("log output");
    assert_eq!(log, "second commit\nfirst commit\n", "git log lists both commits:\n{out}");
    let before_log = out.split("LOG\n").next().unwrap_or_default();
    assert_eq!(before_log.trim(), "", "git fsck finds nothing and git status is clean:\n{out}");
    assert!(
        t.path("repo/.git/objects/pack").read_dir().unwrap().count() >= 2,
        "gc wrote a pack and its index"
    );
}

#[test]
fn sqlite3_ten_thousand_rows_pass_integrity_check() {
    require_tool("sqlite3");
    let t = TestFs::new("sqlite");
    let script = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, payload BLOB);
                  BEGIN;
                  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
                    INSERT INTO t SELECT i, 'row ' || i, randomblob(100 + i % 300) FROM n;
                  COMMIT;
                  CREATE INDEX t_name ON t(name);
                  PRAGMA integrity_check;
                  SELECT count(*) FROM t;";
    let out = run(Command::new("sqlite3").arg(t.path("test.db")).arg(script)).ok();
    assert_eq!(out.stdout, "ok\n10000\n", "integrity_check and count:\n{}", out.text());
    // Again through a fresh process, in WAL mode (a shared mapping of the -shm file).
    let out = run(Command::new("sqlite3").arg(t.path("test.db")).arg(
        "PRAGMA journal_mode=WAL; UPDATE t SET name = name || '!' WHERE id % 2 = 0;
         PRAGMA integrity_check; SELECT count(*) FROM t WHERE name LIKE '%!';",
    ))
    .ok();
    assert_eq!(out.stdout, "wal\nok\n5000\n", "{}", out.text());
}

#[test]
fn make_builds_and_runs_a_small_c_project() {
    require_tool("make");
    require_tool("cc");
    let t = TestFs::new("make");
    let p = t.path("proj");
    fs::create_dir(&p).unwrap();
    fs::write(p.join("sum.h"), "int sum_to(int n);\nint square(int n);\n").unwrap();
    fs::write(p.join("sum.c"), "#include \"sum.h\"\nint sum_to(int n) { int s = 0; for (int i = 1; i <= n; i++) s += i; return s; }\n").unwrap();
    fs::write(p.join("square.c"), "#include \"sum.h\"\nint square(int n) { return n * n; }\n").unwrap();
    fs::write(
        p.join("main.c"),
        "#include <stdio.h>\n#include \"sum.h\"\nint main(void) { printf(\"sum=%d square=%d\\n\", sum_to(100), square(12)); return 0; }\n",
    )
    .unwrap();
    fs::write(
        p.join("Makefile"),
        "app: main.o sum.o square.o\n\t$(CC) -o $@ $^\n%.o: %.c sum.h\n\t$(CC) -O2 -Wall -c -o $@ $<\nclean:\n\trm -f app *.o\n",
    )
    .unwrap();
    sh(&p, "make -j2 >/dev/null");
    let out = run(&mut Command::new(p.join("app"))).ok();
    assert_eq!(out.stdout, "sum=5050 square=144\n");
    // A second make has nothing to do; touching a source rebuilds (mtimes work).
    let again = sh(&p, "make");
    assert!(again.contains("up to date"), "{again}");
    sh(&p, "sleep 1.1; touch square.c; make | grep square.o >/dev/null; ./app; make clean; test ! -e app");
}

#[test]
fn rm_rf_leaves_the_fs_empty_and_frees_the_space() {
    require_tool("df");
    let t = TestFs::new("rm-rf");
    let start = t.statvfs();
    fs::create_dir(t.path("tree")).unwrap();
    make_tree(&t.path("tree"), 1500, 4);
    fs::write(t.path("big"), vec![7u8; 20 << 20]).unwrap();
    let full = t.statvfs();
    assert!(
        (start.f_bfree - full.f_bfree) * full.f_frsize >= 20 << 20,
        "writing 20+ MiB used {} blocks of {}",
        start.f_bfree - full.f_bfree,
        full.f_frsize
    );
    assert!(start.f_ffree > full.f_ffree + 1500, "inodes were used: {} -> {}", start.f_ffree, full.f_ffree);
    sh(&t.mnt, "rm -rf tree big");
    assert_eq!(fs::read_dir(&t.mnt).unwrap().count(), 0, "the fs is empty after rm -rf");
    let end = t.statvfs();
    let slack = (start.f_blocks / 100).max(256);
    assert!(
        end.f_bfree + slack >= start.f_bfree,
        "free blocks back near the start: {} at first, {} full, {} after rm -rf (slack {slack})",
        start.f_bfree,
        full.f_bfree,
        end.f_bfree
    );
    assert!(end.f_ffree + 256 >= start.f_ffree, "free inodes back: {} -> {}", start.f_ffree, end.f_ffree);
    let df = sh(&t.mnt, "df -P .");
    assert!(df.lines().count() == 2, "df lists the mount:\n{df}");
}
