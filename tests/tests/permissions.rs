//! Permissions and privilege over FUSE, checked as unprivileged users would meet them: each
//! check runs a command in a child that `setpriv` has dropped to another uid, gid and groups.
//! The kernel does the checking (the mount always has `default_permissions`); zpmfs must keep
//! the modes, owners and groups it decides on right: the creator's ids and umask, setgid
//! inheritance, setuid/setgid and file capabilities dropped on write, truncate and chown.
//!
//! The users need no passwd entries: numeric ids are enough for setpriv and for the kernel.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use zpmfs_tests::*;

/// A group alice and carol belong to and nobody does not.
const STAFF: u32 = 4100;

/// Someone the checks run as: setpriv sets real, effective and saved ids and the groups.
struct User {
    name: &'static str,
    uid: u32,
    gid: u32,
    groups: &'static [u32],
}

const ALICE: User = User { name: "alice", uid: 4001, gid: 4001, groups: &[STAFF] };
/// In alice's group staff, not its owner.
const CAROL: User = User { name: "carol", uid: 4003, gid: 4003, groups: &[STAFF] };
const NOBODY: User = User { name: "nobody", uid: 65534, gid: 65534, groups: &[] };

/// Run `script` in bash in `dir`, as `who` (None: as root, the test's own user).
fn as_user(who: Option<&User>, dir: &Path, script: &str) -> Output {
    let mut cmd = match who {
        None => Command::new("bash"),
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", u.uid)).arg(format!("--regid={}", u.gid));
            if u.groups.is_empty() {
                c.arg("--clear-groups");
            } else {
                let g: Vec<String> = u.groups.iter().map(u32::to_string).collect();
                c.arg(format!("--groups={}", g.join(",")));
            }
            c.args(["--", "bash"]);
            c
        }
    };
    run(cmd.arg("-c").arg(script).current_dir(dir))
}

/// How a refused call shows: the strerror of its errno, as coreutils print it.
#[derive(Clone, Copy, Debug)]
enum Refused {
    /// EACCES: the mode bits say no.
    Eacces,
    /// EPERM: only the owner (or root) may.
    Eperm,
}

impl Refused {
    fn message(self) -> &'static str {
        match self {
            Refused::Eacces => "Permission denied",
            Refused::Eperm => "Operation not permitted",
        }
    }
}

/// Checks on one mount, counted; failures are collected so one run names all of them.
struct Checks<'a> {
    t: &'a TestFs,
    passed: usize,
    failed: Vec<String>,
}

fn who_name(who: Option<&User>) -> &'static str {
    who.map_or("root", |u| u.name)
}

impl<'a> Checks<'a> {
    fn new(t: &'a TestFs) -> Checks<'a> {
        Checks { t, passed: 0, failed: Vec::new() }
    }

    /// Set up as root in the mount; panics if that fails (the setup is not a check).
    fn setup(&self, script: &str) {
        sh(&self.t.mnt, script);
    }

    fn record(&mut self, ok: bool, what: String) {
        if ok {
            self.passed += 1;
        } else {
            self.failed.push(what);
        }
    }

    /// `who` may run `script` (run in the mount's root).
    fn may(&mut self, who: Option<&User>, what: &str, script: &str) {
        let out = as_user(who, &self.t.mnt, script);
        let ok = out.success();
        self.record(
            ok,
            format!(
                "{} {what}: should be allowed, but `{script}` failed: {}",
                who_name(who),
                out.text().trim()
            ),
        );
    }

    /// `who` may not: `script` fails, saying why.
    fn may_not(&mut self, who: Option<&User>, what: &str, script: &str, why: Refused) {
        let out = as_user(who, &self.t.mnt, script);
        let ok = !out.success() && out.stderr.contains(why.message());
        let got = if out.success() { "it succeeded".to_string() } else { out.text().trim().to_string() };
        self.record(
            ok,
            format!(
                "{} {what}: should fail with {why:?} ({}), but `{script}`: {got}",
                who_name(who),
                why.message()
            ),
        );
    }

    /// access(2) as `who`: bash's test calls faccessat2(AT_EACCESS), and setpriv set the real
    /// and effective ids alike.
    fn access(&mut self, who: Option<&User>, rel: &str, flag: char, want: bool) {
        let out = as_user(who, &self.t.mnt, &format!("test -{flag} {rel}"));
        self.record(
            out.success() == want,
            format!("{} access({rel}, {flag}) should say {}", who_name(who), if want { "yes" } else { "no" }),
        );
    }

    /// A fact about the tree, as root sees it.
    fn expect<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        self.record(got == want, format!("{what}: got {got:?}, want {want:?}"));
    }

    /// mode & 0o7777, uid, gid of a path in the mount (lstat, as root).
    fn owner_mode(&self, rel: &str) -> (u32, u32, u32) {
        match fs::symlink_metadata(self.t.path(rel)) {
            Ok(m) => (m.mode() & 0o7777, m.uid(), m.gid()),
            Err(e) => panic!("lstat {rel}: {e}"),
        }
    }

    fn mode(&self, rel: &str) -> u32 {
        self.owner_mode(rel).0
    }

    fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.t.path(rel)).is_ok()
    }

    /// Fail with every failed check; report how many passed.
    #[track_caller]
    fn done(self, topic: &str) {
        let total = self.passed + self.failed.len();
        assert!(
            self.failed.is_empty(),
            "{topic}: {} of {total} checks failed:\n{}",
            self.failed.len(),
            self.failed.join("\n")
        );
        eprintln!("{topic}: {total} checks passed");
    }
}

/// A fresh mount that other users may use.
fn shared_fs(what: &str) -> TestFs {
    require_tool("setpriv");
    let t = TestFs::formatted(what, "64M");
    let out = t.try_mount(&["-o", "allow_other"]);
    assert!(out.success(), "mount -o allow_other failed: {}", out.text());
    t
}

#[test]
fn file_mode_bits_decide_who_reads_writes_and_runs() {
    require_tool("setfattr");
    let t = shared_fs("perm-files");
    let mut c = Checks::new(&t);
    c.setup(
        "for f in f640 f604 f070 f000; do echo secret > $f; done
         printf '#!/bin/sh\\necho ran\\n' > run754; cp run754 run644
         chown 4001:4100 f640 f604 f070 f000 run754 run644
         chmod 640 f640; chmod 604 f604; chmod 070 f070; chmod 000 f000; chmod 754 run754; chmod 644 run644
         setfattr -n user.note -v hello f604; cp f640 f600; chown 4001:4100 f600; chmod 600 f600",
    );
    let (a, cl, n) = (Some(&ALICE), Some(&CAROL), Some(&NOBODY));

    // Owner, group and other classes: the first class that matches decides, even when a
    // later one would allow more.
    c.may(a, "reads its 0640 file", "cat f640");
    c.may(cl, "reads a group-readable 0640 file", "cat f640");
    c.may_not(n, "reads a 0640 file", "cat f640", Refused::Eacces);
    c.may(a, "appends to its 0640 file", "echo alice >> f640");
    c.may_not(cl, "writes a 0640 file (group has no w)", "echo carol >> f640", Refused::Eacces);
    c.may_not(n, "writes a 0640 file", "echo nobody >> f640", Refused::Eacces);
    c.expect(
        "f640 after one allowed append",
        fs::read_to_string(t.path("f640")).unwrap(),
        "secret\nalice\n".into(),
    );
    c.may_not(cl, "reads a 0604 file (group class has no r)", "cat f604", Refused::Eacces);
    c.may(n, "reads a 0604 file (other has r)", "cat f604");
    c.may_not(a, "reads its own 0070 file (owner class has nothing)", "cat f070", Refused::Eacces);
    c.may(cl, "reads and writes a 0070 file as a group member", "cat f070 && echo carol >> f070");
    c.may_not(a, "reads its 0000 file", "cat f000", Refused::Eacces);
    c.may(None, "reads and writes a 0000 file (DAC override)", "cat f000 && echo root >> f000");

    // Execute bits.
    c.may(a, "runs its 0754 script", "./run754 | grep -qx ran");
    c.may(cl, "runs a 0754 script as a group member", "./run754 | grep -qx ran");
    c.may_not(n, "runs a 0754 script (other has r only)", "./run754", Refused::Eacces);
    c.may(n, "reads the 0754 script it may not run", "sh run754 | grep -qx ran");
    c.may_not(None, "runs a script with no x bit at all", "./run644", Refused::Eacces);
    c.may(None, "runs a script with an x bit for someone", "./run754 | grep -qx ran");

    // access(2) agrees with what open and exec did.
    for (who, rel, flag, want) in [
        (a, "f640", 'r', true),
        (a, "f640", 'w', true),
        (a, "f640", 'x', false),
        (cl, "f640", 'r', true),
        (cl, "f640", 'w', false),
        (n, "f640", 'r', false),
        (n, "f604", 'r', true),
        (cl, "f604", 'r', false),
        (a, "f070", 'r', false),
        (cl, "f070", 'w', true),
        (a, "run754", 'x', true),
        (cl, "run754", 'x', true),
        (n, "run754", 'x', false),
        (None, "f000", 'r', true),
        (None, "f000", 'w', true),
        (None, "run644", 'x', false),
        (None, "run754", 'x', true),
        (n, ".", 'w', false),
        (n, ".", 'x', true),
    ] {
        c.access(who, rel, flag, want);
    }

    // user.* attributes follow the file's r and w bits; trusted.* needs CAP_SYS_ADMIN.
    c.may(n, "reads user.* of a file it may read", "getfattr -n user.note f604 | grep -q hello");
    c.may_not(n, "sets user.* on a file it may not write", "setfattr -n user.x -v 1 f604", Refused::Eacces);
    c.may(a, "sets user.* on its file", "setfattr -n user.x -v 1 f604");
    c.may_not(n, "reads user.* of a 0600 file", "getfattr -n user.x f600", Refused::Eacces);
    c.may_not(a, "sets trusted.* on its own file", "setfattr -n trusted.x -v 1 f600", Refused::Eperm);
    c.may(None, "sets and reads trusted.*", "setfattr -n trusted.x -v 1 f600 && getfattr -n trusted.x f600");
    c.done("file mode bits");
}

#[test]
fn directory_bits_decide_who_lists_searches_and_changes_entries() {
    let t = shared_fs("perm-dirs");
    let mut c = Checks::new(&t);
    c.setup(
        "for d in private:700 group:750 searchonly:711 listonly:744 ro:755; do
             mkdir ${d%:*}; echo inside > ${d%:*}/f; chmod 666 ${d%:*}/f
             chown -R 4001:4100 ${d%:*}; chmod ${d#*:} ${d%:*}
         done
         mkdir -m 777 open open2; mkdir open/alices; chown 4001:4001 open/alices
         mkdir -p deep/a/b; echo deep > deep/a/b/f; chmod 700 deep/a; chmod 777 deep/a/b; chmod 666 deep/a/b/f",
    );
    let (a, cl, n) = (Some(&ALICE), Some(&CAROL), Some(&NOBODY));

    c.may(a, "lists and reads in its 0700 directory", "ls private && cat private/f");
    c.may_not(n, "lists a 0700 directory", "ls private", Refused::Eacces);
    c.may_not(n, "reads a 0666 file inside a 0700 directory", "cat private/f", Refused::Eacces);
    c.may_not(n, "stats a file inside a 0700 directory", "stat private/f", Refused::Eacces);
    c.may(cl, "lists and reads in a 0750 directory as a group member", "ls group && cat group/f");
    c.may_not(cl, "creates in a 0750 directory (group has no w)", "touch group/new", Refused::Eacces);
    c.may_not(n, "reads in a 0750 directory", "cat group/f", Refused::Eacces);
    c.may_not(n, "lists a 0711 directory", "ls searchonly", Refused::Eacces);
    c.may(n, "reads a file by name in a 0711 directory", "cat searchonly/f");
    c.may(n, "lists names in a 0744 directory", "ls listonly | grep -qx f");
    c.may_not(n, "reads a file in a 0744 directory (no search)", "cat listonly/f", Refused::Eacces);
    c.may_not(n, "stats a file in a 0744 directory", "stat listonly/f", Refused::Eacces);
    c.may_not(n, "cds into a 0744 directory", "cd listonly", Refused::Eacces);

    // Changing entries needs w (and x) on the directory, whatever the file's own bits.
    c.may(n, "writes a 0666 file in a 0755 directory", "echo nobody >> ro/f");
    c.may_not(n, "removes a 0666 file from a 0755 directory", "rm -f ro/f", Refused::Eacces);
    c.may_not(n, "renames in a 0755 directory", "mv ro/f ro/g", Refused::Eacces);
    c.may_not(n, "creates a file in a 0755 directory", "touch ro/new", Refused::Eacces);
    c.may_not(n, "makes a directory in a 0755 directory", "mkdir ro/d", Refused::Eacces);
    c.may_not(n, "links into a 0755 directory", "ln ro/f ro/l", Refused::Eacces);
    c.may_not(n, "makes a symlink in a 0755 directory", "ln -s f ro/s", Refused::Eacces);
    c.expect("ro/ after the refusals", sh(&t.mnt, "ls ro"), "f\n".to_string());
    c.may(a, "creates, renames and removes in its 0755 directory", "touch ro/n && mv ro/n ro/m && rm ro/m");
    c.may(
        n,
        "creates, renames, links and removes in a 0777 directory",
        "mkdir open/n && touch open/n/x && mv open/n/x open/n/y && ln open/n/y open/z && rm open/z open/n/y && rmdir open/n",
    );
    // Moving a directory to a new parent rewrites its "..": that needs w on the directory.
    c.may_not(
        n,
        "moves someone else's directory to another parent",
        "mv open/alices open2/",
        Refused::Eacces,
    );
    c.may(a, "moves its own directory to another parent", "mv open/alices open2/ && mv open2/alices open/");

    // Every component of a path needs search permission.
    c.may_not(n, "reads a 0666 file in a 0777 dir below a 0700 dir", "cat deep/a/b/f", Refused::Eacces);
    c.may_not(n, "creates below a 0700 dir", "touch deep/a/b/new", Refused::Eacces);
    c.may(None, "reads below a 0700 dir", "cat deep/a/b/f");
    c.done("directory bits");
}

#[test]
fn sticky_directory_protects_each_users_files() {
    let t = shared_fs("perm-sticky");
    let mut c = Checks::new(&t);
    c.setup("mkdir -m 1777 tmp; mkdir -m 1777 alicetmp; chown 4001:4001 alicetmp");
    let (a, n) = (Some(&ALICE), Some(&NOBODY));

    c.may(
        a,
        "creates in a 1777 directory",
        "echo a > tmp/alices && chmod 666 tmp/alices && mkdir tmp/alicedir",
    );
    c.may(n, "creates in a 1777 directory", "echo n > tmp/nobodys && echo n > alicetmp/nobodys");
    c.may_not(n, "removes another user's file from a sticky directory", "rm -f tmp/alices", Refused::Eperm);
    c.may_not(n, "renames another user's file in a sticky directory", "mv tmp/alices tmp/x", Refused::Eperm);
    c.may_not(
        n,
        "removes another user's directory from a sticky directory",
        "rmdir tmp/alicedir",
        Refused::Eperm,
    );
    c.may_not(
        n,
        "renames its file over another user's in a sticky directory",
        "mv -f tmp/nobodys tmp/alices",
        Refused::Eperm,
    );
    c.expect(
        "alice's file after the refusals",
        fs::read_to_string(t.path("tmp/alices")).ok(),
        Some("a\n".into()),
    );
    c.expect("alice's directory after the refusals", c.exists("tmp/alicedir"), true);
    c.may(
        n,
        "renames and removes its own file in a sticky directory",
        "mv tmp/nobodys tmp/mine && rm tmp/mine",
    );
    c.may(a, "removes another user's file from a sticky directory it owns", "rm alicetmp/nobodys");
    c.may(None, "removes anyone's file from a sticky directory", "rm tmp/alices && rmdir tmp/alicedir");
    c.expect("the sticky bit is kept", c.mode("tmp"), 0o1777);
    c.done("sticky directories");
}

#[test]
fn setgid_directory_passes_its_group_on() {
    let t = shared_fs("perm-setgid");
    let mut c = Checks::new(&t);
    c.setup("mkdir shared opensg plain; chgrp 4100 shared opensg; chmod 2775 shared; chmod 2777 opensg; chmod 777 plain");
    let (a, n) = (Some(&ALICE), Some(&NOBODY));

    c.may(
        a,
        "creates a file and directories in a setgid directory",
        "touch shared/a && mkdir -p shared/sub/subsub",
    );
    c.expect("a file's group in a setgid dir", c.owner_mode("shared/a").2, STAFF);
    c.expect(
        "a new subdirectory (mode, gid)",
        (c.mode("shared/sub"), c.owner_mode("shared/sub").2),
        (0o2755, STAFF),
    );
    c.expect(
        "a sub-subdirectory (mode, gid)",
        (c.mode("shared/sub/subsub"), c.owner_mode("shared/sub/subsub").2),
        (0o2755, STAFF),
    );
    c.may(None, "creates in a setgid directory", "touch shared/r && mkfifo shared/p && ln -s a shared/s");
    for rel in ["shared/r", "shared/p", "shared/s"] {
        c.expect(&format!("{rel}'s group"), c.owner_mode(rel).2, STAFF);
    }
    c.may(a, "creates in a plain directory", "touch plain/a && mkdir plain/d");
    c.expect("group of a file in a plain dir", c.owner_mode("plain/a").2, ALICE.gid);
    c.expect("a subdirectory of a plain dir is not setgid", c.mode("plain/d"), 0o755);

    // Someone outside the group gets the group too, but may not make its files setgid.
    c.may(n, "creates in a setgid directory of a group it is not in", "touch opensg/n && mkdir opensg/nd");
    c.expect("its file's group", c.owner_mode("opensg/n").2, STAFF);
    c.expect(
        "its subdirectory (mode, gid)",
        (c.mode("opensg/nd"), c.owner_mode("opensg/nd").2),
        (0o2755, STAFF),
    );
    c.may(n, "chmods its file 2755 (setgid is dropped silently)", "chmod 2755 opensg/n");
    c.expect("a non-member's chmod g+s", c.mode("opensg/n"), 0o755);
    c.may(a, "chmods its file 2755 as a group member", "touch opensg/a && chmod 2755 opensg/a");
    c.expect("a member's chmod g+s", c.mode("opensg/a"), 0o2755);
    c.done("setgid directories");
}

#[test]
fn setuid_and_setgid_are_cleared_on_write_truncate_and_chown() {
    let t = shared_fs("perm-suid");
    let mut c = Checks::new(&t);
    c.setup(
        "mkdir -m 777 w; cd w
         for f in wr sgnox own root tr otrunc chown chgrp ftr falloc; do echo data > $f; chown 4001:4100 $f; chmod 6777 $f; done
         chmod 6766 sgnox; chmod 4755 own; chmod 6755 chgrp
         mkdir sgdir; chown 4001:4100 sgdir; chmod 2775 sgdir",
    );
    let (a, n) = (Some(&ALICE), Some(&NOBODY));

    c.may(n, "appends to a 6777 file", "echo x >> w/wr");
    c.expect("6777 after another user's write", c.mode("w/wr"), 0o777);
    c.may(n, "appends to a 6766 file", "echo x >> w/sgnox");
    c.expect(
        "6766 after a write: setgid without group x is not a privilege, and stays",
        c.mode("w/sgnox"),
        0o2766,
    );
    c.may(a, "appends to its own 4755 file", "echo x >> w/own");
    c.expect("4755 after its unprivileged owner's write", c.mode("w/own"), 0o755);
    c.may(None, "appends to a 6777 file", "echo x >> w/root");
    c.expect("6777 after root's write (CAP_FSETID)", c.mode("w/root"), 0o6777);
    c.may(n, "truncates a 6777 file", "truncate -s 1 w/tr");
    c.expect("6777 after truncate(2) by another user", c.mode("w/tr"), 0o777);
    c.may(n, "opens a 6777 file with O_TRUNC", ": > w/otrunc");
    c.expect("6777 after open(O_TRUNC) by another user", c.mode("w/otrunc"), 0o777);
    c.may(n, "ftruncates a 6777 file", "exec 3<>w/ftr && truncate -s 2 /proc/self/fd/3");
    c.expect("6777 after a truncate through an open fd", c.mode("w/ftr"), 0o777);
    c.may(n, "fallocates a 6777 file", "fallocate -l 8192 w/falloc");
    c.expect("6777 after fallocate by another user", c.mode("w/falloc"), 0o777);
    c.may(None, "gives a 6777 file away", "chown 65534 w/chown");
    c.expect("6777 after chown (mode, uid)", (c.mode("w/chown"), c.owner_mode("w/chown").1), (0o777, 65534));
    c.may(a, "chgrps its 6755 file to its own group", "chgrp 4100 w/chgrp");
    c.expect("6755 after its owner's chgrp", c.mode("w/chgrp"), 0o755);
    c.may(None, "gives a setgid directory away", "chown 65534 w/sgdir");
    c.expect("a setgid directory keeps setgid across chown", c.mode("w/sgdir"), 0o2775);
    c.expect(
        "file sizes after the writes",
        sh(&t.mnt, "stat -c %s w/wr w/tr w/otrunc w/ftr"),
        "7\n1\n0\n2\n".into(),
    );
    c.done("setuid/setgid clearing");
}

#[test]
fn only_root_gives_files_away_and_owners_chgrp_to_their_groups() {
    let t = shared_fs("perm-chown");
    let mut c = Checks::new(&t);
    c.setup("echo data > f; chown 4001:4001 f; chmod 644 f; mkdir d; chown 4001:4001 d");
    let (a, cl, n) = (Some(&ALICE), Some(&CAROL), Some(&NOBODY));

    c.may_not(a, "gives its file to another user", "chown 65534 f", Refused::Eperm);
    c.may_not(a, "gives its directory to another user", "chown 65534 d", Refused::Eperm);
    c.may(a, "chowns its file to itself", "chown 4001 f");
    c.may_not(a, "chgrps its file to a group it is not in", "chgrp 65534 f", Refused::Eperm);
    c.may(a, "chgrps its file to a group it is in", "chgrp 4100 f && chgrp 4100 d");
    c.expect("f's owner and group", c.owner_mode("f"), (0o644, ALICE.uid, STAFF));
    c.may_not(cl, "chgrps a file of its group it does not own", "chgrp 4003 f", Refused::Eperm);
    c.may_not(n, "chgrps another user's file", "chgrp 65534 f", Refused::Eperm);
    c.may_not(n, "chowns another user's file to itself", "chown 65534 f", Refused::Eperm);
    c.may_not(n, "chmods another user's file", "chmod 666 f", Refused::Eperm);
    c.may_not(cl, "chmods a file of its group", "chmod 664 f", Refused::Eperm);
    c.expect("f after the refusals", c.owner_mode("f"), (0o644, ALICE.uid, STAFF));
    c.may(a, "chmods its file", "chmod 600 f");
    c.may(None, "chowns anything to anyone", "chown 65534:65534 f && chown 4003:4100 d");
    c.expect("f after root's chown", c.owner_mode("f"), (0o600, 65534, 65534));
    c.expect("d after root's chown", c.owner_mode("d"), (0o755, CAROL.uid, STAFF));
    c.done("chown and chmod");
}

#[test]
fn only_the_owner_sets_explicit_times_anyone_who_may_write_touches() {
    let t = shared_fs("perm-utimes");
    let mut c = Checks::new(&t);
    c.setup("echo w > rw; echo r > ro; chown 4001:4001 rw ro; chmod 666 rw; chmod 644 ro");
    let (a, n) = (Some(&ALICE), Some(&NOBODY));
    let mtime = |rel: &str| fs::symlink_metadata(t.path(rel)).unwrap().mtime();
    let atime = |rel: &str| fs::symlink_metadata(t.path(rel)).unwrap().atime();

    c.may(a, "sets explicit times on its file", "touch -d @1000000000 rw ro");
    c.expect("mtime set by its owner", (mtime("rw"), mtime("ro")), (1_000_000_000, 1_000_000_000));
    c.may_not(n, "sets an explicit mtime on a file it may write", "touch -m -d @5 rw", Refused::Eperm);
    c.may_not(n, "sets an explicit atime on a file it may write", "touch -a -d @5 rw", Refused::Eperm);
    c.expect("times after the refusals", (mtime("rw"), atime("rw")), (1_000_000_000, 1_000_000_000));
    c.may(n, "touches a file it may write to now", "touch rw");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    c.expect("mtime after touch, within 60 s of now", (now - mtime("rw")).abs() < 60, true);
    c.may_not(n, "touches a file it may not write", "touch ro", Refused::Eacces);
    c.expect("ro's mtime after the refusal", mtime("ro"), 1_000_000_000);
    c.may(None, "sets explicit times on anyone's file", "touch -d @2000000000 ro");
    c.expect("mtime set by root", mtime("ro"), 2_000_000_000);
    c.done("utimes");
}

#[test]
fn without_allow_other_other_users_cannot_reach_the_mount() {
    require_tool("setpriv");
    let t = TestFs::formatted("perm-private", "64M");
    // An empty configuration: a zus.toml on this machine with allow_other must not decide.
    let conf = ScratchDir::new("perm-private-conf");
    fs::write(conf.path.join("zus.toml"), "").unwrap();
    let out = t.try_mount(&["--config", conf.path.join("zus.toml").to_str().unwrap()]);
    assert!(out.success() && is_mount_point(&t.mnt), "mount: {}", out.text());
    sh(&t.mnt, "echo open > f; chmod 777 . ; chmod 666 f");
    let mut c = Checks::new(&t);
    let mnt = t.mnt.display().to_string();
    for who in [&ALICE, &NOBODY] {
        let out = as_user(Some(who), Path::new("/"), &format!("stat {mnt}"));
        c.record(
            !out.success() && out.stderr.contains("Permission denied"),
            format!("{} stat of a mount without allow_other: {}", who.name, out.text().trim()),
        );
        for script in [format!("ls {mnt}"), format!("cat {mnt}/f"), format!("touch {mnt}/new")] {
            let out = as_user(Some(who), Path::new("/"), &script);
            c.record(
                !out.success() && out.stderr.contains("Permission denied"),
                format!("{} `{script}` on a mount without allow_other: {}", who.name, out.text().trim()),
            );
        }
    }
    c.expect("nothing was created", c.exists("new"), false);
    c.may(None, "uses its own mount", "cat f && touch new");
    // The same image mounted with allow_other is open to everyone the modes allow.
    t.unmount();
    let out = t.try_mount(&["-o", "allow_other"]);
    assert!(out.success(), "{}", out.text());
    c.may(Some(&NOBODY), "uses a mount with allow_other", "cat f && rm new");
    c.done("allow_other");
}

#[test]
fn only_root_may_mount() {
    require_tool("setpriv");
    let t = TestFs::formatted("perm-usermount", "64M");
    let mut c = Checks::new(&t);
    // Everything else a user would need is theirs: the image and the mount point.
    let (image, mnt) = (t.image.display().to_string(), t.mnt.display().to_string());
    sh(Path::new("/"), &format!("chown 4001:4001 {image} {mnt}; chmod 600 {image}"));
    let zus = bin("zus").display().to_string();
    let out = as_user(Some(&ALICE), Path::new("/"), &format!("{zus} mount {image} {mnt}"));
    c.record(!out.success(), format!("a user's `zus mount` succeeded: {}", out.text()));
    c.record(
        out.text().contains("must run as root"),
        format!("a user's `zus mount` should say that zus must run as root: {}", out.text()),
    );
    c.expect("mounted after a user's try", is_mount_point(&t.mnt), false);
    t.wait_for_server_exit(std::time::Duration::from_secs(5));
    c.expect("zus left running after a user's try", zus_pids(&t.mnt), vec![]);
    // The image is untouched: root mounts it, and it is clean.
    let root = t.try_mount(&[]);
    c.record(
        root.success() && root.text().contains("(clean"),
        format!("root's mount after a user's try: {}", root.text()),
    );
    eprintln!("user mount: refused with: {}", out.text().trim());
    c.done("user mounts");
}

#[test]
fn mount_is_nosuid_and_nodev_unless_asked() {
    let t = shared_fs("perm-nosuid");
    let mut c = Checks::new(&t);
    c.setup("cp /usr/bin/id id; chmod 4755 id; mknod null c 1 3; chmod 666 null");
    let n = Some(&NOBODY);
    c.expect("id is setuid root", c.owner_mode("id"), (0o4755, 0, 0));
    c.may(n, "runs a setuid-root program on a nosuid mount, as itself", "test $(./id -u) = 65534");
    c.may_not(None, "opens a device node on a nodev mount", "echo > null", Refused::Eacces);
    t.unmount();
    let out = t.try_mount(&["-o", "allow_other,suid,dev"]);
    assert!(out.success(), "{}", out.text());
    c.may(n, "runs a setuid-root program on a suid mount, as root", "test $(./id -u) = 0");
    c.may(n, "writes a 0666 device node on a dev mount", "echo > null");
    c.done("nosuid and nodev");
}

/// cap_net_raw+ep as security.capability holds it (VFS_CAP_REVISION_2, effective), so that
/// no setcap is needed.
const CAP_NET_RAW: &str = "0x0100000200200000000000000000000000000000";

/// A file's capabilities (security.capability) are a privilege like setuid: a write drops
/// them, as file_remove_privs does on local filesystems (tmpfs, ext4), whoever writes.
#[test]
fn file_capabilities_are_dropped_on_write_truncate_and_chown() {
    require_tool("setfattr");
    let t = shared_fs("perm-fcaps");
    let mut c = Checks::new(&t);
    c.setup(&format!(
        "mkdir -m 777 w; for f in byother byroot byfalloc bytrunc bychown kept; do
             cp /usr/bin/id w/$f; chmod 777 w/$f; setfattr -n security.capability -v {CAP_NET_RAW} w/$f
         done"
    ));
    let n = Some(&NOBODY);
    let caps = |rel: &str| as_user(None, &t.mnt, &format!("getfattr -n security.capability {rel}")).success();
    c.expect("the capabilities were set", caps("w/kept"), true);
    c.may(n, "appends to a file with capabilities", "echo >> w/byother");
    c.expect("capabilities after another user's write", caps("w/byother"), false);
    c.may(None, "appends to a file with capabilities", "echo >> w/byroot");
    c.expect("capabilities after root's write", caps("w/byroot"), false);
    c.may(n, "fallocates a file with capabilities", "fallocate -o 1048576 -l 4096 w/byfalloc");
    c.expect("capabilities after fallocate", caps("w/byfalloc"), false);
    c.may(n, "truncates a file with capabilities", "truncate -s 100 w/bytrunc");
    c.expect("capabilities after truncate", caps("w/bytrunc"), false);
    c.may(None, "chowns a file with capabilities", "chown 4001 w/bychown");
    c.expect("capabilities after chown", caps("w/bychown"), false);
    c.may(n, "reads and runs a file with capabilities", "cat w/kept > /dev/null && w/kept -u");
    c.expect("capabilities after reads and a run", caps("w/kept"), true);
    c.done("file capabilities");
}

/// New files belong to whoever made them and get the mode asked for less the umask (zus
/// applies the umask itself where the kernel leaves it to it, FUSE_DONT_MASK); all of it,
/// and every mode and owner set above, is still there after a remount.
#[test]
fn new_files_get_their_creators_ids_and_the_umask_and_keep_them() {
    let t = shared_fs("perm-umask");
    let mut c = Checks::new(&t);
    c.setup("mkdir -m 777 w");
    let (a, n) = (Some(&ALICE), Some(&NOBODY));
    c.may(a, "creates with umask 027", "cd w && umask 027 && touch a027 && mkdir d027 && mkfifo p027");
    c.may(n, "creates with umask 0", "cd w && umask 0 && touch n000 && mkdir d000 && ln -s x s000");
    c.may(n, "creates with umask 077", "cd w && umask 077 && echo x > n077 && mkdir d077");
    let want = [
        ("w/a027", (0o640, ALICE.uid, ALICE.gid)),
        ("w/d027", (0o750, ALICE.uid, ALICE.gid)),
        ("w/p027", (0o640, ALICE.uid, ALICE.gid)),
        ("w/n000", (0o666, NOBODY.uid, NOBODY.gid)),
        ("w/d000", (0o777, NOBODY.uid, NOBODY.gid)),
        ("w/s000", (0o777, NOBODY.uid, NOBODY.gid)),
        ("w/n077", (0o600, NOBODY.uid, NOBODY.gid)),
        ("w/d077", (0o700, NOBODY.uid, NOBODY.gid)),
    ];
    for (rel, w) in want {
        c.expect(&format!("{rel} (mode, uid, gid)"), c.owner_mode(rel), w);
    }
    c.may(None, "chmods and chowns", "cd w && chmod 4750 a027 && chown 4003:4100 n000 && chmod 1770 d000");
    let before: Vec<_> = ["w", "w/a027", "w/n000", "w/d000", "w/s000"].map(|r| (r, c.owner_mode(r))).into();
    t.unmount();
    let out = t.try_mount(&["-o", "allow_other"]);
    assert!(out.success(), "{}", out.text());
    for (rel, w) in &before {
        c.expect(&format!("{rel} after a remount"), c.owner_mode(rel), *w);
    }
    c.may_not(a, "writes a 0600 file of another user after the remount", "echo >> w/n077", Refused::Eacces);
    c.done("creators and umask");
}

/// The flags `lsattr -d` shows for each of `names` (its dashes left out), space-separated.
fn lsattr(t: &TestFs, names: &str) -> String {
    let out = as_user(None, &t.mnt, &format!("lsattr -d {names}"));
    assert!(out.success(), "lsattr: {}", out.text());
    let flags: Vec<String> =
        out.stdout.lines().filter_map(|l| l.split_whitespace().next()).map(|f| f.replace('-', "")).collect();
    flags.join(" ")
}

#[test]
fn immutable_and_append_only_files_refuse_what_chattr_says_even_to_root() {
    require_tool("chattr");
    require_tool("lsattr");
    let t = shared_fs("perm-chattr");
    let mut c = Checks::new(&t);
    c.setup(
        "echo data > frozen; echo log > journal; mkdir sealed ad; echo x > sealed/in; echo y > ad/old
         chown 4001:4001 frozen journal
         chattr +i frozen sealed; chattr +a journal ad; chattr +d journal",
    );
    let a = Some(&ALICE);
    // chattr's flags are root's to set (CAP_LINUX_IMMUTABLE), and stay as set.
    c.may_not(a, "sets immutable on its own file", "chattr +i journal", Refused::Eperm);
    let ctime = |c: &Checks| fs::metadata(c.t.path("frozen")).map(|m| (m.ctime(), m.ctime_nsec())).unwrap();
    let before = ctime(&c);
    c.may(a, "sets nodump on its own file", "chattr +d frozen && chattr -d frozen");
    // The server moved ctime; stat must show it, not what the kernel had cached.
    c.record(ctime(&c) > before, format!("ctime after chattr: {:?}, not after {before:?}", ctime(&c)));
    c.expect("lsattr's flags", lsattr(&t, "frozen journal sealed ad"), "i ad i a".to_string());
    // Immutable: nothing changes, for root neither.
    for (what, script) in [
        ("writes to an immutable file", "echo more >> frozen"),
        ("truncates an immutable file", "truncate -s 0 frozen"),
        ("chmods an immutable file", "chmod 600 frozen"),
        ("chowns an immutable file", "chown 0 frozen"),
        ("touches an immutable file", "touch frozen"),
        ("sets an xattr on an immutable file", "setfattr -n user.a -v 1 frozen"),
        ("removes an immutable file", "rm -f frozen"),
        ("renames an immutable file", "mv frozen thawed"),
        ("links an immutable file", "ln frozen frozen2"),
        ("creates in an immutable directory", "touch sealed/new"),
        ("removes from an immutable directory", "rm -f sealed/in"),
        ("renames out of an immutable directory", "mv sealed/in moved"),
    ] {
        c.may_not(None, what, script, Refused::Eperm);
    }
    c.may(None, "reads an immutable file", "test \"$(cat frozen)\" = data");
    c.may(None, "writes an existing file in an immutable directory", "echo new > sealed/in");
    // Append-only: appending works, nothing else that changes data or names.
    c.may(a, "appends to its append-only file", "echo more >> journal");
    for (what, script) in [
        ("overwrites an append-only file", "echo over > journal"),
        (
            "writes inside an append-only file",
            "dd if=/dev/zero of=journal bs=1 count=1 conv=notrunc status=none",
        ),
        ("truncates an append-only file", "truncate -s 0 journal"),
        ("chmods an append-only file", "chmod 600 journal"),
        ("removes an append-only file", "rm -f journal"),
        ("removes from an append-only directory", "rm -f ad/old"),
    ] {
        c.may_not(None, what, script, Refused::Eperm);
    }
    c.may(None, "creates in an append-only directory", "touch ad/new");
    c.expect(
        "the append-only file",
        fs::read_to_string(t.path("journal")).unwrap_or_default(),
        "log\nmore\n".into(),
    );
    // Cleared, everything works again; the flags lived through a remount before that.
    t.unmount();
    let out = t.try_mount(&["-o", "allow_other"]);
    assert!(out.success(), "mount again: {}", out.text());
    c.expect("lsattr after a remount", lsattr(&t, "frozen ad"), "i a".to_string());
    c.may(None, "clears the flags and then changes everything", "chattr -i frozen sealed && chattr -a journal ad && rm frozen journal sealed/in ad/old && rmdir sealed");
    c.done("chattr flags");
}
