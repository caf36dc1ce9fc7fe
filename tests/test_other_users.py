"""Outputs, leftovers and cameras as a user other than the one who made them: a sticky shared folder (/tmp, a drop
folder), another user's partial file being written now, a camera node of a group the user is not in.

Each check runs its part as the user ``nobody`` in a forked child (``os.setuid``), so these need root, and are skipped
with that reason elsewhere. The folders are made under /tmp (pytest's own are 0700, which nobody cannot enter)."""

from __future__ import annotations

import grp
import logging
import os
import pickle
import pwd
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="acting as another user (os.setuid) needs root")  # fmt: skip


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def as_other_user(work: Callable[[], Any]) -> Any:
    """``work()``'s result (or the exception it raised, returned) as ``nobody``, in a forked child."""
    uid, gid = _nobody()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            try:
                result: Any = work()
            except BaseException as e:  # noqa: BLE001 - handed to the parent to assert on
                result = e
            with os.fdopen(write, "wb") as pipe:
                pipe.write(pickle.dumps(result))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    assert data, "the child as nobody returned nothing"
    return pickle.loads(data)


@pytest.fixture
def shared():
    """A folder under /tmp everyone can enter; its mode is each test's to set."""
    folder = Path(tempfile.mkdtemp(prefix="birefvid-users-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_overwrite_of_another_users_file_in_a_sticky_folder_is_refused_before_the_work(shared: Path):
    """Only a file's owner may rename over it in a sticky folder: ``--overwrite`` ran the whole job and failed at the
    commit ("Operation not permitted"), the work lost. The check says so before the work; a plain shared folder,
    where the rename is allowed, passes."""
    from birefvid.errors import SinkError
    from birefvid.io.atomic import check_target

    sticky, plain = shared / "sticky", shared / "plain"
    for folder, mode in ((sticky, 0o1777), (plain, 0o777)):
        folder.mkdir()
        folder.chmod(mode)
        (folder / "taken.webm").write_bytes(b"root's")

    def check(folder: Path) -> Callable[[], Any]:
        return lambda: check_target(folder / "taken.webm", overwrite=True, is_dir=False)

    refused = as_other_user(check(sticky))
    assert isinstance(refused, SinkError), refused
    assert "belongs to root" in str(refused) and "sticky" in str(refused)
    assert as_other_user(check(plain)) is None
    assert (sticky / "taken.webm").read_bytes() == b"root's"


def test_an_existing_output_of_another_user_in_a_sticky_folder_is_not_sent_to_overwrite(shared: Path):
    """Without ``--overwrite`` the refusal said "(use --overwrite)", which the user ran only to be refused again: in a
    sticky folder another user's file cannot be replaced at all. Its own file there still gets the hint."""
    from birefvid.io.atomic import check_target

    shared.chmod(0o1777)
    (shared / "taken.webm").write_bytes(b"root's")
    refused = as_other_user(lambda: check_target(shared / "taken.webm", overwrite=False, is_dir=False))
    said = str(refused)
    assert type(refused).__name__ == "SinkError", refused
    assert "belongs to root" in said and "name another output" in said and "(use " not in said, said

    def own() -> Any:
        (shared / "mine.webm").write_bytes(b"nobody's")
        return check_target(shared / "mine.webm", overwrite=False, is_dir=False)

    assert "(use " in str(as_other_user(own))  # --overwrite, or overwrite=True from Python
    assert (shared / "taken.webm").read_bytes() == b"root's"


def test_batch_leaves_another_users_partial_it_may_not_remove_with_a_warning(shared: Path):
    """A killed run of another user left ``.a.partial-*.mov`` in a sticky folder: batch's clean-up after the video
    raised PermissionError, a traceback and exit 1 with the video written but not recorded as done."""
    from birefvid.batch.runner import remove_partials

    shared.chmod(0o1777)
    left = shared / ".a.partial-zzzzzzzz.mov"
    left.write_bytes(b"killed")
    left.chmod(0o644)

    def clean() -> list[str]:
        said: list[str] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                said.append(record.getMessage())

        logging.getLogger("birefvid").addHandler(Keep())
        remove_partials(shared / "a.mov")
        return said

    said = as_other_user(clean)
    assert isinstance(said, list), said
    assert any(str(left) in line and "another user" in line for line in said), said
    assert left.exists()


def test_another_users_partial_being_written_is_neither_removed_nor_named(shared: Path):
    """A partial is 0600 while written (mkstemp), so another user cannot open it to test its writer lock: it was taken
    for a killed run's, named as one and removed by a second user's batch in a group-writable folder, losing the
    first user's work at its commit."""
    from birefvid.batch.leftovers import partials_beside
    from birefvid.batch.runner import remove_partials
    from birefvid.io.atomic import AtomicFile

    shared.chmod(0o777)
    writing = AtomicFile(shared / "a.mov")  # this process (root) writing now
    try:
        assert stat.S_IMODE(writing.temp.stat().st_mode) == 0o600

        def look() -> list[Path]:
            named = partials_beside([shared / "a.mov"])
            remove_partials(shared / "a.mov")
            return named

        assert as_other_user(look) == []
        assert writing.temp.exists()
    finally:
        writing.discard()


def test_a_camera_this_user_may_not_open_names_the_group_to_join(shared: Path):
    """The message named "the 'video' group" whatever group the node has (udev gives some cameras to others)."""
    from birefvid.io.live_connections import unopened_camera

    group = next((g for g in grp.getgrall() if g.gr_gid not in (0, _nobody()[1]) and g.gr_name != "video"), None)
    if group is None:
        pytest.skip("no group other than root, nobody's and video on this machine")
    node = shared / "video7"
    try:
        os.mknod(node, stat.S_IFCHR | 0o660, os.makedev(81, 7))
    except PermissionError:
        pytest.skip("this container may not make device nodes (no CAP_MKNOD)")
    os.chown(node, 0, group.gr_gid)
    node.chmod(0o660)
    said = as_other_user(lambda: unopened_camera(str(node)))
    assert f"join its group '{group.gr_name}'" in said, said
    assert "usermod -aG" in said


def test_a_shared_cache_made_under_umask_077_is_passed_by_not_loaded(shared: Path, monkeypatch):
    """A cache another user (root, a CI image's build) filled under umask 077: its files are 0600 in readable folders.
    The export was taken as cached, and OpenVINO's "Unable to read the model" ended every run, a traceback, exit 1;
    its compiled blobs were linked into the user's own fallback cache, where they could not be read either. Now the
    export is made again in the fallback cache, with a warning, and nothing unreadable is linked."""
    from birefvid.backends import export

    cache = shared / "cache"
    for sub in ("onnx", "openvino"):
        (cache / sub).mkdir(parents=True)
    cache.chmod(0o755)
    onnx, blob = cache / "onnx" / "birefnet-x.onnx", cache / "openvino" / "123.blob"
    for made in (onnx, blob):
        made.parent.chmod(0o755)
        made.write_bytes(b"root's, 0600")
        made.chmod(0o600)
    temp = shared / "tmp"
    temp.mkdir()
    temp.chmod(0o1777)
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(cache))

    def look() -> tuple[bool, list[str], list[str]]:
        said: list[str] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                said.append(record.getMessage())

        logging.getLogger("birefvid").addHandler(Keep())
        tempfile.tempdir = str(temp)  # the fallback cache: here, not the machine's /tmp
        trusted = export._trusted_export(onnx)
        linked = sorted(os.listdir(export.writable_cache_dir("openvino")))
        return trusted, linked, said

    result = as_other_user(look)
    assert isinstance(result, tuple), result
    trusted, linked, said = result
    assert trusted is False
    assert any("cannot be read by this user" in line and "0600" in line for line in said), said
    assert linked == []



def test_skip_existing_keeps_another_users_picture_in_a_sticky_folder_without_refusing(shared: Path):
    """``image --skip-existing`` keeps a picture already there: another user's in a sticky folder is no reason to
    refuse the run, as ``--overwrite``'s replacing it is."""
    from birefvid.commands.image import plan_outputs
    from birefvid.errors import SinkError

    shared.chmod(0o1777)
    photo = shared / "in" / "a.jpg"
    photo.parent.mkdir()
    photo.parent.chmod(0o755)
    photo.write_bytes(b"a photo")
    out = shared / "out"
    out.mkdir()
    out.chmod(0o1777)
    (out / "a.png").write_bytes(b"root's")
    kept = as_other_user(lambda: plan_outputs([photo], out, overwrite=False, skip_existing=True))
    assert kept == [out / "a.png"], kept
    replaced = as_other_user(lambda: plan_outputs([photo], out, overwrite=True))
    assert isinstance(replaced, SinkError) and "belongs to root" in str(replaced), replaced


@pytest.mark.parametrize("home", ["/nonexistent", "read-only"])
def test_a_local_ray_cluster_gets_its_token_where_the_home_cannot_keep_it(shared: Path, monkeypatch, home: str):
    """Ray turns token authentication on for a cluster it starts and writes the token to ~/.ray/auth_token first: with
    a home that is missing or read-only, ``batch --ray local`` ended with its PermissionError traceback, exit 1. The
    run gives it the token in ``RAY_AUTH_TOKEN``; a home that keeps one (or a token given) is left to Ray."""
    from birefvid.batch.ray_executor import token_without_home

    if home == "read-only":
        home = str(shared / "home")
        Path(home).mkdir()
        Path(home).chmod(0o755)  # root's: nobody cannot write it
    monkeypatch.setenv("HOME", home)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)

    def give() -> tuple[bool, int]:
        return token_without_home(), len(os.environ.get("RAY_AUTH_TOKEN", ""))

    assert as_other_user(give) == (True, 0)  # a check only: the token is given while the cluster starts (local_token)
    writable = shared / "own"
    writable.mkdir()
    os.chown(writable, *_nobody())
    monkeypatch.setenv("HOME", str(writable))
    assert as_other_user(give) == (False, 0)
    assert not (writable / ".ray").exists()  # Ray makes it; the check made it as a side effect


def test_a_local_clusters_token_is_given_while_it_starts_then_taken_back(shared: Path, monkeypatch):
    """``RAY_AUTH_TOKEN`` set for a local cluster was left in the driver's environment for good: a later ``ray.init`` of
    the same Python process to another cluster sent it, a token that cluster refused. It is there only while the local
    cluster starts (whose processes keep it), and a token the user set is neither replaced nor removed."""
    from birefvid.batch.ray_executor import local_token

    monkeypatch.setenv("HOME", "/nonexistent")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)

    def start() -> tuple[bool, int, bool]:
        with local_token() as given:
            during = len(os.environ.get("RAY_AUTH_TOKEN", ""))
        return given, during, "RAY_AUTH_TOKEN" in os.environ

    assert as_other_user(start) == (True, 64, False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "the user's")

    def start_with_own() -> tuple[bool, str]:
        with local_token() as given:
            pass
        return given, os.environ.get("RAY_AUTH_TOKEN", "")

    assert as_other_user(start_with_own) == (False, "the user's")


def test_another_users_unreadable_video_is_said_unreadable_not_written_now(shared: Path):
    """``being_written`` takes an entry it may not open as in use, for another user's 0600 partial: an input video of
    another user's (0600) was then said "being written by another birefvid run now" by ``process`` and ``batch``."""
    from birefvid.errors import SourceError
    from birefvid.io.atomic import being_written
    from birefvid.io.video_source import open_container

    video = shared / "secret.mp4"
    video.write_bytes(b"root's video")
    video.chmod(0o600)
    partial = shared / ".a.partial-zzzzzzzz.mov"
    partial.write_bytes(b"root's, 0600 while written")
    partial.chmod(0o600)
    assert as_other_user(lambda: (being_written(video), being_written(partial))) == (False, True)
    said = as_other_user(lambda: open_container(video))
    assert isinstance(said, SourceError) and "Permission denied" in str(said) and "being written" not in str(said), said
    # as a picture's: whose it is, not "is not a readable video", which reads as a file that is no video
    assert "belongs to root" in str(said) and "0600" in str(said) and "not a readable video" not in str(said), said


def test_another_users_unreadable_picture_is_one_error_line(shared: Path):
    """``image`` of another user's 0600 picture ended in a PermissionError traceback, exit 1 (one of several: the
    whole run, where an unreadable picture is skipped)."""
    from birefvid.errors import SourceError
    from birefvid.io.image_source import read_rgb_deep

    picture = shared / "secret.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")  # never decoded: the read is refused first
    picture.chmod(0o600)
    said = as_other_user(lambda: read_rgb_deep(picture))
    assert isinstance(said, SourceError), said
    assert "Permission denied" in str(said) and "belongs to root" in str(said), said


def test_a_camera_of_the_users_own_group_is_not_said_a_group_to_join(shared: Path):
    """A user's primary group is in no ``gr_mem``: a node of that group, which the user's session holds, was said
    "join its group (usermod -aG ...)", which changes nothing; it is the node's other bits that keep it shut."""
    from birefvid.io.live_connections import no_camera_permission

    node = shared / "video8"
    try:
        os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(81, 8))
    except PermissionError:
        pytest.skip("this container may not make device nodes (no CAP_MKNOD)")
    os.chown(node, 0, _nobody()[1])  # nobody's own primary group
    node.chmod(0o660)
    said = as_other_user(lambda: no_camera_permission(str(node), os.stat(node)))
    assert isinstance(said, str) and "usermod" not in said and "in already" in said, said


def test_another_users_folder_as_a_picture_sequence_output_is_refused_before_the_work(shared: Path):
    """A PNG sequence is written beside its folder and renamed onto it. Another user's empty folder in a sticky folder
    passed the checks without ``--overwrite`` (an empty folder is a fine place), and the commit's rename, refused,
    kept the work as ``NAME (2)`` saying "something was put there while this run wrote it"; a folder of theirs this
    user may not read (0700) was a PermissionError traceback, with a pattern (``dir/m.%04d.png``) too. Both are one
    error line before the work; this user's own empty folder there passes."""
    from birefvid.errors import SinkError
    from birefvid.io.atomic import check_target

    shared.chmod(0o1777)
    empty, private, own = shared / "empty", shared / "private", shared / "own"
    empty.mkdir()
    empty.chmod(0o755)
    private.mkdir()
    private.chmod(0o700)
    own.mkdir()
    os.chown(own, *_nobody())

    def check(target: Path) -> Any:
        return check_target(target, overwrite=False, is_dir=True)

    said = as_other_user(lambda: check(empty))
    assert isinstance(said, SinkError) and "belongs to root" in str(said), said
    said = as_other_user(lambda: check(private))
    assert isinstance(said, SinkError) and "may not read" in str(said), said
    assert as_other_user(lambda: check(own)) is None

    from birefvid.sequence_names import check_previous_run, sequence_pattern

    said = as_other_user(lambda: check_previous_run(sequence_pattern(str(private / "m.%04d.png")), overwrite=False))
    assert isinstance(said, SinkError) and "may not read" in str(said), said


def test_another_users_leftover_is_named_as_theirs_not_with_an_rm_and_not_waited_for(shared: Path):
    """The end-of-run warning named another user's leftover in a sticky folder with "`rm -rf` it", which this user may
    not; and a stopped batch waited ``KILLED_WRITER_SECONDS`` for the lock of one it may not open (never free to it)."""
    from birefvid.batch import runner
    from birefvid.batch.leftovers import note_partials_beside

    shared.chmod(0o1777)
    readable = shared / ".a.partial-zzzzzzzz.mov"
    readable.write_bytes(b"killed")
    readable.chmod(0o644)
    closed = shared / ".b.partial-zzzzzzzz.mov"
    closed.write_bytes(b"killed, 0600")
    closed.chmod(0o600)

    def look() -> tuple[list[str], bool]:
        said: list[str] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                said.append(record.getMessage())

        logging.getLogger("birefvid").addHandler(Keep())
        note_partials_beside([shared / "a.mov"])

        def no_wait(seconds: float) -> None:
            raise AssertionError("waited for a lock this user cannot test")

        runner.time.sleep = no_wait  # the child's own module: never back in pytest
        return said, runner._let_go(closed, 60.0)

    result = as_other_user(look)
    assert isinstance(result, tuple), result
    said, let_go = result
    assert any(str(readable) in line and "belongs to root" in line for line in said), said
    assert not any("rm -rf" in line for line in said), said
    assert let_go is False


def test_a_report_onto_another_users_file_in_a_sticky_folder_is_refused_before_the_work(shared: Path):
    """``--report`` (and ``--json``, ``--progress-json``) is renamed onto its name: another user's file there in a sticky
    folder passed the checks (even one writable by all), and the run did its work and ended "--report rep.json: cannot
    write it (Operation not permitted)", exit 2, the report lost. Said before the work; /dev/null is written into."""
    from birefvid.errors import SinkError
    from birefvid.io.atomic import check_output_file
    from birefvid.runtime.file_job import check_report_path

    shared.chmod(0o1777)
    report = shared / "rep.json"
    report.write_text("{}")
    report.chmod(0o666)
    said = as_other_user(lambda: check_report_path(report))
    assert isinstance(said, SinkError) and "report" in str(said) and "belongs to root" in str(said), said
    said = as_other_user(lambda: check_output_file(report, "--json"))
    assert isinstance(said, SinkError) and "--json" in str(said) and "belongs to root" in str(said), said
    assert as_other_user(lambda: check_report_path("/dev/null")) is None


def test_a_json_onto_another_users_file_it_may_not_write_names_the_owner(shared: Path):
    """``bench --json rep.json`` onto a colleague's 0644 file in a shared folder said only "--json rep.json is not
    writable": whose it is, and its mode, say whom to ask (as an unreadable input's line does)."""
    from birefvid.io.atomic import check_output_file

    shared.chmod(0o777)
    report = shared / "rep.json"
    report.write_text("{}")
    report.chmod(0o644)
    said = str(as_other_user(lambda: check_output_file(report, "--json")))
    assert "not writable" in said and "belongs to root" in said and "0644" in said, said
    assert report.read_text() == "{}"


def test_a_batch_rerun_into_another_users_work_folder_names_it_and_its_owner(shared: Path):
    """A second user's batch into a shared output folder where the first user's batch left its work folder under
    umask 022 (0755): "cannot write in the output folder DIR: Permission denied" of a folder that user may write,
    naming neither ``.birefvid-batch`` nor whose it is, nor what to do."""
    from birefvid.batch.manifest import WORK_DIR, RunLock

    shared.chmod(0o777)
    work = shared / WORK_DIR
    work.mkdir()
    work.chmod(0o755)
    (work / "manifest.json").write_text('{"schema": "birefvid.batch-manifest/1", "videos": {}}\n')

    def rerun() -> Any:
        lock = RunLock(shared)
        lock.acquire()
        lock.release()

    refused = as_other_user(rerun)
    said = str(refused)
    assert type(refused).__name__ == "SinkError", refused
    assert str(work) in said and "root" in said and "0755" in said, said
    assert "--output-dir" in said and "\n" not in said
    assert "chgrp" in said  # root's group, which nobody is not in: g+w alone would not let them in
    os.chown(work, 0, _nobody()[1])  # a group both share, as a setgid project folder gives: g+w is enough
    said = str(as_other_user(rerun))
    assert f"chmod -R g+rwX {work}" in said and "chgrp" not in said, said
    assert sorted(p.name for p in work.iterdir()) == ["manifest.json"]  # nothing of the first user's touched


def test_a_shared_cache_of_another_user_is_said_theirs_by_name(shared: Path):
    """A team cache (``BIREFVID_CACHE_DIR`` in a setgid project folder) filled by a colleague is passed by: the warning
    said "another user's (uid 1001)" where every other line about their files names them."""
    from birefvid.backends.cache_trust import folder_distrust

    uid, _ = _nobody()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        pytest.skip("no login name for nobody's uid on this machine")
    cache = shared / "cache"
    cache.mkdir(mode=0o755)
    os.chown(cache, uid, uid)
    said = folder_distrust(cache) or ""  # as root: nobody's folder is another user's
    assert f"{cache} is another user's ({name})" in said, said


def test_a_batch_beside_another_users_running_batch_in_a_shared_folder_is_refused_as_one_and_a_dead_ones_lock_taken(shared: Path):
    """The group-shared output folder the work folder's refusal advises (g+rwX, umask 002): the first user's batch
    makes its lock 0644, which the second may not open to write. The second's batch, while the first ran, and after
    the first was killed (its lock left), ended in a PermissionError traceback; it is now "another birefvid batch is
    writing" while the first runs, and takes the lock over once that run is gone."""
    import fcntl

    from birefvid.batch.manifest import WORK_DIR, RunLock

    shared.chmod(0o777)
    work = shared / WORK_DIR
    work.mkdir()
    work.chmod(0o777)  # writable to the second user, as g+rwX makes it for the group
    fd = os.open(work / "lock", os.O_CREAT | os.O_RDWR, 0o644)  # the first user's run, holding it
    os.write(fd, b"elsewhere 4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def second() -> Any:
        lock = RunLock(shared)
        lock.acquire()
        owner = os.stat(work / "lock").st_uid
        lock.release()
        return owner

    try:
        refused = as_other_user(second)
    finally:
        os.close(fd)  # the first run is gone (killed): its flock dropped, its lock file left
    assert type(refused).__name__ == "SinkError", refused
    assert str(refused).startswith(f"another birefvid batch is writing to {shared} (host and pid: elsewhere 4242)"), refused
    assert (work / "lock").exists()  # the running batch's lock is not removed
    assert as_other_user(second) == _nobody()[0]  # taken over: this run's own lock


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) for a private read-only mount")
def test_a_json_on_a_read_only_mount_is_said_read_only_not_another_users(shared: Path):
    """A volume mounted read-only (a container's input volume): root was told `--progress-json X is not writable (it
    belongs to alice, mode 0644)`, as though alice's chmod would help; it is the mount. The owner's line stays for a
    writable file system (test_a_json_onto_another_users_file_it_may_not_write_names_the_owner)."""
    import subprocess
    import sys

    volume = shared / "volume"
    volume.mkdir()
    (volume / "progress.json").write_text("{}\n")
    os.chown(volume / "progress.json", *_nobody())
    script = (f'mount --bind "{volume}" "{volume}" && mount -o remount,bind,ro "{volume}" "{volume}" && '
              f'exec "{sys.executable}" -m birefvid batch none.mp4 --output-dir "{shared}/out" --progress-json "{volume}/progress.json" -q')  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"birefvid: error: --progress-json {volume}/progress.json is not writable (a read-only file system)\n"


def test_a_video_in_another_users_closed_folder_is_one_line_naming_that_folder(shared: Path):
    """`process ~alice/clip.mp4`, `batch ~alice/clip.mp4` or `image ~alice/photo.png` by bob, where alice's home is 0700: Path.exists() and
    is_dir() raise PermissionError there (they answer False only for a missing file), so both ended in a traceback.
    It is one line, naming the folder on the way that is closed and whose it is; the output is not made."""
    from birefvid.batch.runner import expand_inputs
    from birefvid.io.atomic import check_replaces_no_input
    from birefvid.commands.image import collect_inputs
    from birefvid.io.factory import open_source

    shared.chmod(0o777)
    home = shared / "home"
    home.mkdir()
    home.chmod(0o700)
    video = home / "clip.mp4"
    video.write_bytes(b"root's video")
    picture = home / "photo.png"
    picture.write_bytes(b"root's picture")

    def each() -> list[str]:
        check_replaces_no_input(shared / "out.mkv", [str(video)])  # the output clashes with nothing it cannot see
        said = []
        for attempt in (lambda: open_source(video), lambda: expand_inputs([str(video)], shared / "out"),
                        lambda: collect_inputs([str(picture)])):
            try:
                attempt()
            except Exception as e:  # noqa: BLE001 - returned for the parent to assert on
                said.append(f"{type(e).__name__}: {e}")
        return said

    said = as_other_user(each)
    closed = f"Permission denied (the folder {home}, on its way, is closed to you: it belongs to root, mode 0700)"
    assert said == [f"SourceError: cannot read {video}: {closed}"] * 2 + [f"SourceError: cannot read {picture}: {closed}"], said
