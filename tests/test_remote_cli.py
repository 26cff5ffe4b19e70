"""``index.py`` / ``search.py`` through the keyless search service (``remote.url`` +
``remote.token_file``): a real server (speechret.service.launch.ServerProcess) serves an empty
keyed-codes library; the index app adds a 10-clip manifest corpus through it (write token;
re-running skips every item), the served library then holds those items, and the search app's
JSON output through the service (read token) is byte for byte the local search's of the same
library directory with the same key -- ids, ranks, distances -- and its decrypted hits are the
local ones. A token is refused on the command line (naming the parameter, never showing the
value) and in a config; a missing or group/world-readable token file and options that need the
library directory (fsck deep=true, repair) are refused with a ConfigError naming the parameter.

The model is a random-weight checkpoint (test_export.random_checkpoint), as in test_client.py:
the property is "the same computation on either side of the wire".
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir

from speechret.apps.index import run_index
from speechret.apps.search import run_search
from speechret.client import RemoteLibrary
from speechret.crypto import generate_key_file
from speechret.errors import ConfigError
from speechret.library.store import SpeechLibrary
from speechret.service.auth import new_token_file
from speechret.service.launch import ServerProcess

from test_export import SR, clip, random_checkpoint

pytestmark = pytest.mark.usefixtures("one_faiss_thread")

REPO = Path(__file__).resolve().parents[1]
N = 10


def compose_cfg(name: str, overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose(name, overrides=overrides)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("remote_cli")
    ckpt = random_checkpoint("speechret_hash", d, "model.net.channels=[8,16,32,32]")
    audio = d / "audio"
    audio.mkdir()
    with open(d / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "id", "speaker", "label", "text"])
        for i in range(N):
            sf.write(str(audio / f"c{i:02d}.wav"), clip(int(SR * (0.5 + 0.07 * i)), 500 + i), SR, subtype="PCM_16")
            w.writerow([f"audio/c{i:02d}.wav", f"item-{i:02d}", f"spk{i % 3}", i % 4, f"words {i}"])
    key = generate_key_file(d / "owner.key")
    lib = RemoteLibrary.create_library(d / "served", checkpoint=ckpt, key=key, keyed_codes=True)
    read, write = new_token_file(d / "read.token"), new_token_file(d / "write.token")
    return {"d": d, "ckpt": ckpt, "key": key, "lib": lib, "read": read, "write": write,
            "queries": [str(audio / f"c{i:02d}.wav") for i in (0, 3, 7)]}


def test_index_and_search_apps_through_the_service_equal_the_local_library(world, capsys):
    d = world["d"]
    index = [f"ckpt_path={world['ckpt']}", "data=manifest", f"data.root={d / 'manifest.csv'}", "progress=false",
             "batch_size=4", f"cipher.key_material.key_file={world['key']}", f"library={d / 'unused'}"]
    queries = "[" + ",".join(world["queries"]) + "]"
    search = [f"ckpt_path={world['ckpt']}", f"queries={queries}", "format=json", "k=4",
              f"cipher.key_material.key_file={world['key']}"]
    with ServerProcess(world["lib"], world["read"], world["write"], d / "server.log") as srv:
        remote = [f"remote.url={srv.url}", f"remote.token_file={world['write']}"]
        report = run_index(compose_cfg("index", [*index, *remote]))
        assert report.added == N and not report.failed
        assert run_index(compose_cfg("index", [*index, *remote])).skipped_existing == N  # resumable
        assert not (d / "unused").exists()  # `library` is not used remotely
        fsck = run_index(compose_cfg("index", [*remote, "command=fsck", f"ckpt_path={world['ckpt']}"]))
        assert fsck["ok"] and fsck["items"] == N
        capsys.readouterr()

        read = [f"remote.url={srv.url}", f"remote.token_file={world['read']}"]
        rows = run_search(compose_cfg("search", [*search, *read, f"decrypt={d / 'remote_hits'}"]))
        remote_out = capsys.readouterr().out
        with SpeechLibrary.open(world["lib"]) as served:  # the server's directory got the items
            assert len(served) == N
        local_rows = run_search(compose_cfg("search", [*search, f"library={world['lib']}",
                                                       f"decrypt={d / 'local_hits'}"]))
        local_out = capsys.readouterr().out
    assert rows == local_rows and {r["query"] for r in rows} == set(world["queries"])
    assert {r["item_id"] for r in rows if r["rank"] == 1 and r["ber"] == 0.0} >= {"item-00"}  # corpus ids
    json_of = lambda out: out.split("[speechret] decrypted")[0]  # noqa: E731  (the JSON, before the decrypt lines)
    assert json_of(remote_out) == json_of(local_out) and json.loads(json_of(remote_out)) == rows
    remote_hits = sorted(p.name for p in (d / "remote_hits").iterdir())
    assert remote_hits == sorted(p.name for p in (d / "local_hits").iterdir()) and remote_hits
    for name in remote_hits:  # decrypted here from the ciphertext the service returned: the local bytes
        assert (d / "remote_hits" / name).read_bytes() == (d / "local_hits" / name).read_bytes()


def test_tokens_and_directory_only_options_are_refused(world, tmp_path, capsys, monkeypatch):
    from speechret.cli import main as cli_main

    monkeypatch.setattr("sys.argv", list(__import__("sys").argv))  # cli_main sets sys.argv for Hydra
    absent = tmp_path / "absent.token"
    with pytest.raises(SystemExit, match=r"remote\.token_file: no such file"):  # --remote URL = remote.url=URL
        cli_main(["search", "--remote", "http://127.0.0.1:9", f"remote.token_file={absent}", "queries=q.wav",
                  f"ckpt_path={world['ckpt']}"])

    token = world["read"].read_text().strip()
    with pytest.raises(SystemExit) as exc:  # on the command line: refused before anything is composed
        cli_main(["search", "remote.url=http://127.0.0.1:9", f"remote.token={token}", "queries=q.wav"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "remote.token" in err and token not in err
    common = ["remote.url=http://127.0.0.1:9", f"ckpt_path={world['ckpt']}", "queries=q.wav"]
    with pytest.raises(ConfigError, match=r"remote\.token\b") as info:  # in a composed config
        run_search(compose_cfg("search", [*common, f"+remote.token={token}"]))
    assert token not in str(info.value)
    with pytest.raises(ConfigError, match=r"remote\.token_file: no such file"):
        run_search(compose_cfg("search", [*common, f"remote.token_file={tmp_path / 'absent.token'}"]))
    with pytest.raises(ConfigError, match=r"remote\.token_file: no such file \(the value is not shown"):
        run_search(compose_cfg("search", [*common, f"remote.token_file={token}"]))  # a token typed as the file
    loose = tmp_path / "loose.token"
    loose.write_text(token + "\n")
    os.chmod(loose, 0o644)
    with pytest.raises(ConfigError, match=r"remote\.token_file: token file .* mode 0644"):
        run_search(compose_cfg("search", [*common, f"remote.token_file={loose}"]))
    with pytest.raises(ConfigError, match=r"remote\.token_file: the service needs a token"):
        run_search(compose_cfg("search", common))
    remote = ["remote.url=http://127.0.0.1:9", f"remote.token_file={world['write']}", f"ckpt_path={world['ckpt']}"]
    with pytest.raises(ConfigError, match=r"^deep: "):
        run_index(compose_cfg("index", [*remote, "command=fsck", "deep=true"]))
    with pytest.raises(ConfigError, match=r"^command: repair works on the library directory"):
        run_index(compose_cfg("index", [*remote, "command=repair"]))
    with pytest.raises(ConfigError, match=r"^create_key: "):
        run_index(compose_cfg("index", [*remote, "create_key=true"]))
