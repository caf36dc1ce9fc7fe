"""``birefvid models --download NAME ...``: weights fetched ahead of time (a container image's build, a machine that will
be offline) through the real huggingface_hub against a local Hugging Face mirror (``hub_mirror.HubMirror``, as a user
with ``HF_ENDPOINT`` set to one), with the checks a run's load makes. No test reaches the network.

The published names' weights are large (lite's test stand-in is 89 MB); these tests name cards of their own
(``BIREFVID_MODELS_DIR``) whose repos hold the shipped ``tiny`` checkpoint (pvt_v2_b0), so the card, the repo, the
download and the backbone check are all the real ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hub_mirror import HubMirror

ASSET = Path(__file__).resolve().parents[1] / "birefvid" / "assets" / "tiny.safetensors"
REPO = "someone/birefnet-b0"
ELSEWHERE = "someone/not-on-the-mirror"


@pytest.fixture(scope="module")
def weights_bytes() -> bytes:
    return ASSET.read_bytes()


@pytest.fixture()
def cards(tmp_path) -> Path:
    folder = tmp_path / "cards"
    folder.mkdir()
    for name, repo in (("b0", REPO), ("gone", ELSEWHERE)):
        card = {"name": name, "backbone": "pvt_v2_b0", "resolution": [256, 256], "source": {"hub_repo": repo, "file": "model.safetensors"}}
        (folder / f"{name}.json").write_text(json.dumps(card))
    return folder


def _env(tmp_path: Path, mirror: HubMirror, cards: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"))}
    return {**env, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": mirror.url, "NO_PROXY": "127.0.0.1,localhost",
            "BIREFVID_MODELS_DIR": str(cards), **extra}  # fmt: skip


def _birefvid(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "birefvid", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def _blobs(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "hf" / "hub").rglob("*") if p.is_file() and "blobs" in p.parts]


def _cached_then_cut_short(tmp_path: Path, env: dict, size: int) -> None:
    """b0 downloaded into the cache, then its copy there cut to a third (a full disk, an interrupted copy)."""
    assert _birefvid(tmp_path, env, "-q", "models", "--download", "b0").returncode == 0
    (blob,) = _blobs(tmp_path)
    with blob.open("r+b") as f:
        f.truncate(size // 3)


def test_download_fetches_each_model_says_where_and_a_second_run_and_an_offline_run_use_the_cache(tmp_path, cards, weights_bytes):
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        env = _env(tmp_path, mirror, cards)
        first = _birefvid(tmp_path, env, "models", "--download", "b0", "tiny", "B0")  # B0: the same card, fetched once
        assert first.returncode == 0, first.stderr
        lines = first.stderr.strip().splitlines()
        assert lines[0] == f"birefvid: downloading model.safetensors from Hugging Face repo {REPO} (first use; cached afterwards) through {mirror.url}"
        assert lines[1].startswith("b0: downloaded to ") and lines[2].startswith("tiny: shipped with birefvid, no download needed ("), lines
        assert len(lines) == 3, lines
        where = Path(lines[1].removeprefix("b0: downloaded to "))
        assert where.read_bytes() == weights_bytes and (tmp_path / "hf" / "hub") in where.parents
        assert first.stdout == ""
        assert [r[0] for r in mirror.requests] == ["HEAD", "GET"]

        again = _birefvid(tmp_path, env, "models", "--download", "b0")
        assert again.returncode == 0, again.stderr
        assert again.stderr == f"b0: already in the cache: {where}\n"
        assert len(mirror.gets()) == 1  # nothing downloaded again

    offline = {**env, "HF_HUB_OFFLINE": "1"}  # the mirror is gone: the cache serves it, as it will the runs
    quiet = _birefvid(tmp_path, offline, "-q", "models", "--download", "b0", "tiny")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "in.png"), np.full((64, 64, 3), 90, np.uint8))
    run = _birefvid(tmp_path, offline, "image", "in.png", "-o", "out.png", "--model", "b0", "--resolution", "64", "-q")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out.png").is_file()


def test_an_unknown_name_is_one_line_listing_the_known_ones_before_any_download(tmp_path, cards, weights_bytes):
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        result = _birefvid(tmp_path, _env(tmp_path, mirror, cards), "models", "--download", "b0", "lyte")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("birefvid: error: unknown model 'lyte'; known models: ") and "b0, " in line and "lite, " in line, line
    assert not mirror.requests and not _blobs(tmp_path)


def test_a_failed_download_is_one_line_naming_the_model_and_the_others_are_still_fetched(tmp_path, cards, weights_bytes):
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        env = _env(tmp_path, mirror, cards)
        result = _birefvid(tmp_path, env, "models", "--download", "gone", "b0", "tiny")
        quiet = _birefvid(tmp_path, env, "models", "--download", "gone", "b0", "-q")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("birefvid: error:")]
    assert len(errors) == 1, lines
    assert errors[0].startswith(f"birefvid: error: gone: {ELSEWHERE}/model.safetensors does not exist on the mirror {mirror.url} (HF_ENDPOINT)")
    assert "a mirror may not hold every repo" in errors[0]
    assert any(line.startswith("b0: downloaded to ") for line in lines) and any(line.startswith("tiny: shipped") for line in lines), lines
    assert len(_blobs(tmp_path)) == 1
    assert quiet.returncode == 2  # -q: the error line alone
    assert quiet.stderr == errors[0] + "\n"


def test_a_damaged_copy_in_the_cache_is_said_with_the_download_that_replaces_it(tmp_path, cards, weights_bytes):
    """The check a run makes as it loads, made now: the offline machine would have found it at its first run."""
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        env = _env(tmp_path, mirror, cards)
        _cached_then_cut_short(tmp_path, env, len(weights_bytes))
    result = _birefvid(tmp_path, {**env, "HF_HUB_OFFLINE": "1"}, "models", "--download", "b0", "tiny")
    assert result.returncode == 2
    error, shipped = result.stderr.strip().splitlines()
    assert error.startswith("birefvid: error: b0: ") and "cut short" in error, error
    assert "fetch it again with `birefvid models --download b0` (HF_HUB_OFFLINE unset)" in error, error
    assert shipped.startswith("tiny: shipped with birefvid")


def test_a_damaged_copy_in_the_cache_is_downloaded_again_when_the_server_is_reachable(tmp_path, cards, weights_bytes):
    """--download is asked to make the weights ready: it said the cached copy was cut short and sent the user to
    `hf download ... --force-download`; with the mirror reachable it now replaces the copy, checked as any download."""
    import cv2
    import numpy as np

    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        env = _env(tmp_path, mirror, cards)
        _cached_then_cut_short(tmp_path, env, len(weights_bytes))
        result = _birefvid(tmp_path, env, "models", "--download", "b0")
    assert result.returncode == 0, result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("b0: the cached copy was damaged; downloaded again to "), result.stderr
    assert Path(summary.rsplit(" to ", 1)[1]).read_bytes() == weights_bytes
    assert len(mirror.gets()) == 2
    cv2.imwrite(str(tmp_path / "in.png"), np.full((64, 64, 3), 90, np.uint8))
    run = _birefvid(tmp_path, {**env, "HF_HUB_OFFLINE": "1"}, "image", "in.png", "-o", "out.png", "--model", "b0", "--resolution", "64", "-q")
    assert run.returncode == 0, run.stderr


def test_a_mirror_in_trouble_as_a_damaged_cached_copy_is_replaced_is_one_line_and_the_copy_left(tmp_path, cards, weights_bytes):
    """Replacing a damaged copy downloads with force_download, where huggingface_hub wraps the server's error (a 500)
    in a bare ValueError: `models --download` ended in a traceback, exit 1. It is the download's one line, naming the
    500, and says the damaged copy is still there; the notice does not call it a first use."""
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        env = _env(tmp_path, mirror, cards)
        _cached_then_cut_short(tmp_path, env, len(weights_bytes))
        mirror.status = 500
        result = _birefvid(tmp_path, env, "models", "--download", "b0")
    assert result.returncode == 2, result.stderr
    notice, error = result.stderr.strip().splitlines()
    assert "(again, over the damaged cached copy)" in notice and "first use" not in notice, notice
    assert error.startswith(f"birefvid: error: b0: cannot download model.safetensors from Hugging Face repo {REPO}: "
                            f"the mirror {mirror.url} (HF_ENDPOINT) answered 500"), error  # fmt: skip
    assert "(the damaged copy there is left as it was)" in error, error
    assert [b.stat().st_size for b in _blobs(tmp_path)] == [len(weights_bytes) // 3]


def test_a_mirror_that_sends_other_bytes_is_caught_by_the_runs_hash_check_and_nothing_kept(tmp_path, cards, weights_bytes):
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        mirror.corrupt = True
        result = _birefvid(tmp_path, _env(tmp_path, mirror, cards), "-q", "models", "--download", "b0")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"birefvid: error: b0: cannot download model.safetensors from Hugging Face repo {REPO}: the mirror {mirror.url} "
                           "(HF_ENDPOINT) sent a damaged file (its SHA-256 is "), line  # fmt: skip
    assert not _blobs(tmp_path)


def test_a_local_checkpoint_that_looks_like_owner_name_is_checked_as_the_run_would_load_it_not_an_unknown_model(tmp_path, cards, weights_bytes):
    """`--model runs/best` loads the folder runs/best (a snapshot, a training run's output): --download said
    "unknown model 'runs/best'", a name --model takes. It is nothing to download; it is read and checked as a run does."""
    (tmp_path / "runs" / "best").mkdir(parents=True)
    (tmp_path / "runs" / "best" / "model.safetensors").write_bytes(weights_bytes)
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        env = _env(tmp_path, mirror, cards)
        result = _birefvid(tmp_path, env, "models", "--download", "runs/best", "tiny")
        typo = _birefvid(tmp_path, env, "models", "--download", "b0", "runs/nope.pt")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == "runs/best: a local checkpoint, no download needed (runs/best/model.safetensors)"
    assert typo.returncode == 2
    assert typo.stderr == "birefvid: error: weights file not found: runs/nope.pt\n"  # as --model says it, before any download
    assert not mirror.requests and not _blobs(tmp_path)


def test_a_name_with_a_line_break_is_written_as_one_line_as_every_other_line(tmp_path, cards, weights_bytes):
    """The model's name leads each line: a folder named with a line break (`$'runs/be\\nst'`) split the summary and the
    error line in two, where the path after it was written `\\n` (one_line), as every other birefvid line writes it."""
    (tmp_path / "runs" / "be\nst").mkdir(parents=True)
    (tmp_path / "runs" / "be\nst" / "model.safetensors").write_bytes(weights_bytes)
    (tmp_path / "bad\nrun").mkdir()
    (tmp_path / "bad\nrun" / "model.safetensors").write_bytes(b"not weights")
    with HubMirror({}) as mirror:
        result = _birefvid(tmp_path, _env(tmp_path, mirror, cards), "models", "--download", "runs/be\nst", "bad\nrun")
    assert result.returncode == 2
    summary, error = result.stderr.splitlines()
    assert summary == "runs/be\\nst: a local checkpoint, no download needed (runs/be\\nst/model.safetensors)"
    assert error.startswith("birefvid: error: bad\\nrun: bad\\nrun/model.safetensors is not a BiRefNet checkpoint"), error


def test_offline_with_nothing_cached_names_the_models_download_that_fetches_each_one(tmp_path, cards):
    """The offline line told the user to run `hf download REPO FILE` (another tool, no checks), not our own
    `birefvid models --download NAME` under the name they gave: a card's name, a repo as --model takes it."""
    with HubMirror({}) as mirror:
        env = _env(tmp_path, mirror, cards, HF_HUB_OFFLINE="1")
        result = _birefvid(tmp_path, env, "models", "--download", "b0", "someone/other")
    assert result.returncode == 2
    card, repo = result.stderr.strip().splitlines()
    assert card.startswith(f"birefvid: error: b0: cannot download model.safetensors from Hugging Face repo {REPO}: offline mode "
                           "(HF_HUB_OFFLINE) is on, and it is not in the cache; on a connected machine run "
                           "`birefvid models --download b0` (HF_HUB_OFFLINE unset) and copy the cache folder ("), card  # fmt: skip
    assert "run `birefvid models --download someone/other` (HF_HUB_OFFLINE unset)" in repo, repo
    assert "hf download" not in card + repo
    assert not mirror.requests


needs_root_and_unshare = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("unshare") is None,
                                            reason="a private read-only or tmpfs mount needs root and unshare(1)")  # fmt: skip


def _in_mount(tmp_path: Path, env: dict[str, str], mount: str, *args: str) -> subprocess.CompletedProcess:
    """birefvid with ``mount`` (shell commands) made in a mount namespace of its own, as a container's volume is."""
    command = " ".join(f"'{a}'" for a in (sys.executable, "-m", "birefvid", *args))
    return subprocess.run(["unshare", "-m", "sh", "-c", f"{mount} && exec {command}"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)  # fmt: skip


@needs_root_and_unshare
def test_a_read_only_cache_names_the_folder_and_hf_hub_cache_and_following_it_downloads(tmp_path, cards, weights_bytes):
    """A read-only HF_HOME (a container's volume, a shared machine's): the line said "run the command again to retry, or
    fetch it with `hf download ...`", which write the same folder and fail alike. It names the folder, the variable that
    chose it and HF_HUB_CACHE, which puts the cache elsewhere; doing that downloads it."""
    hf = tmp_path / "hf"
    (hf / "hub").mkdir(parents=True)
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        env = _env(tmp_path, mirror, cards)
        read_only = f"mount --bind '{hf}' '{hf}' && mount -o remount,bind,ro '{hf}' '{hf}'"
        result = _in_mount(tmp_path, env, read_only, "-q", "models", "--download", "b0")
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"birefvid: error: b0: cannot download model.safetensors from Hugging Face repo {REPO}: the cache folder "
                               f"{hf / 'hub'} (HF_HOME's hub folder) cannot be written (Read-only file system: "), line  # fmt: skip
        assert line.endswith("nothing of it was kept in the cache: point HF_HUB_CACHE at a folder you can write "
                             "(e.g. `export HF_HUB_CACHE=~/hf-cache`) and run the command again, or pass --weights FILE"), line  # fmt: skip
        assert "hf download" not in line and "to retry" not in line
        assert not _blobs(tmp_path)

        elsewhere = tmp_path / "mine"
        fixed = _in_mount(tmp_path, {**env, "HF_HUB_CACHE": str(elsewhere)}, read_only, "models", "--download", "b0")
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stderr.strip().splitlines()[-1].startswith(f"b0: downloaded to {elsewhere}/")


@needs_root_and_unshare
def test_a_full_cache_disk_says_free_space_or_move_the_cache(tmp_path, cards, weights_bytes):
    hf = tmp_path / "hf"
    hf.mkdir()
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        env = {**_env(tmp_path, mirror, cards), "PYTHONWARNINGS": "ignore"}  # huggingface_hub's own "Not enough free disk space"
        result = _in_mount(tmp_path, env, f"mount -t tmpfs -o size=4m tmpfs '{hf}'", "-q", "models", "--download", "b0")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"the cache folder {hf / 'hub'} (HF_HOME's hub folder) has no room (No space left on device); nothing of it was kept " \
           "in the cache: free space there, or point HF_HUB_CACHE at a folder with room and run the command again" in line, line
    assert "hf download" not in line


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="acting as another user needs root and setpriv(1)")  # fmt: skip
def test_a_user_given_roots_hf_hub_cache_is_told_to_point_it_at_a_folder_of_their_own(cards, weights_bytes):
    """A normal user whose environment names root's cache (a shared machine's profile, a container run as another
    user): Permission denied, with the folder, that HF_HUB_CACHE set it, and to point it elsewhere."""
    import pwd
    import tempfile

    try:
        uid, gid = pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid
    except KeyError:
        uid, gid = 65534, 65534
    shared = Path(tempfile.mkdtemp(prefix="birefvid-hf-", dir="/tmp"))  # pytest's folders are 0700: nobody cannot enter
    try:
        shared.chmod(0o755)
        roots = shared / "root-hub"
        roots.mkdir()
        (shared / "cards").mkdir()
        for card in cards.iterdir():
            (shared / "cards" / card.name).write_bytes(card.read_bytes())
        (shared / "cards").chmod(0o755)

        with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
            env = {**_env(shared, mirror, shared / "cards"), "HF_HUB_CACHE": str(roots), "HOME": str(shared / "home")}
            as_nobody = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]  # (a preexec_fn's setuid could not
            # exec this interpreter where setpriv can)
            result = subprocess.run([*as_nobody, sys.executable, "-m", "birefvid", "-q", "models", "--download", "b0"],
                                    capture_output=True, text=True, env=env, cwd=shared, timeout=120)  # fmt: skip
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert f"the cache folder {roots} (set by HF_HUB_CACHE) cannot be written (Permission denied: {roots}/" in line, line
        assert "point HF_HUB_CACHE at a folder you can write" in line and "hf download" not in line, line
        assert not any(roots.iterdir())
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_a_dropped_link_says_retry_and_a_run_names_the_models_download_not_hf_download(tmp_path, cards, weights_bytes):
    """A server or link failure: retry. A run's line named `hf download REPO FILE` (no SHA-256 or backbone check); it
    names `birefvid models --download NAME`, which `models --download`'s own line does not send the user back to."""
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "in.png"), np.full((64, 64, 3), 90, np.uint8))
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        mirror.drop_after, mirror.drops = 1000, 100
        env = _env(tmp_path, mirror, cards)
        run = _birefvid(tmp_path, env, "-q", "image", "in.png", "-o", "out.png", "--model", "b0", "--resolution", "64")
        ahead = _birefvid(tmp_path, env, "-q", "models", "--download", "b0")
    assert run.returncode == 2 and ahead.returncode == 2, run.stderr + ahead.stderr
    line = run.stderr.strip().splitlines()[-1]
    assert "broke off and resuming failed" in line, line
    assert line.endswith("nothing of it was kept in the cache: run the command again to retry, or fetch it alone with "
                         "`birefvid models --download b0`, or pass --weights FILE"), line  # fmt: skip
    line = ahead.stderr.strip().splitlines()[-1]
    assert line.endswith("nothing of it was kept in the cache: run the command again to retry, or pass --weights FILE"), line
    assert not _blobs(tmp_path) and not (tmp_path / "out.png").exists()
