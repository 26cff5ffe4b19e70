"""The main job (``make demo``) on the built-in default corpus.

Steps: generate the synthetic Mandarin corpus (espeak-ng) when missing → load it through
:class:`~speechret.data.datamodule.SpeechDataModule` → print a summary (items, speakers,
durations, label counts, splits) → apply every CPO to one utterance and print what each did
(power ratio, SNR against the original, correlation, distinct levels) → print the feature shapes
each paper's models consume, for one real batch → train a small model and print its accuracy and
mAP → encrypt every utterance but the held-back test speakers' into a library (AES-256-GCM,
FAISS), query it with the held-back speakers' utterances after a CPO, print the hits with their BER,
decrypt the top hit and check it is bit-exact.

``conf/demo.yaml`` builds on ``conf/train.yaml`` (its defaults list starts with ``train``), so one
composition serves both: every training override on the command line (``data=``, ``experiment=``,
``trainer.max_epochs=``, ...) changes the corpus of stages 1-3 and the model of stage 4 alike, and
``--cfg job`` shows the training config as it will run. The demo's own keys live under ``demo.*``;
:func:`train_config` drops them before training.

Run it as ``make demo``, ``speechret demo [overrides]`` or ``python -m speechret.apps.demo
[overrides]``; the configs come from :data:`speechret.config.CONF_DIR` (inside the package).
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.table import Table

from speechret.config import CONF_DIR
from speechret.cpo import build_cpo
from speechret.crypto.keys import build_cipher_from_cfg
from speechret.apps.train import train
from speechret.audio import load_audio
from speechret.hashing.hasher import Hasher
from speechret.library.indexer import index_items, open_or_create, to_pcm16
from speechret.library.query import search_codes

log = logging.getLogger(__name__)
#: keys of conf/demo.yaml that are the demo's own (never passed to training)
DEMO_KEYS = ("demo",)


def train_config(cfg: DictConfig, out_dir: str | Path | None = None) -> DictConfig:
    """The config stage 4 trains with: the demo's composed config (``conf/train.yaml`` with the
    command line's overrides) without the demo's own keys (:data:`DEMO_KEYS`), writing into
    ``out_dir`` (``paths.output_dir``) when given."""
    tcfg = copy.deepcopy(cfg)
    with open_dict(tcfg):
        for key in DEMO_KEYS:
            tcfg.pop(key, None)
        if out_dir is not None:
            tcfg.paths.output_dir = str(out_dir)
    return tcfg


def corpus_tables(dm) -> list[Table]:
    s = dm.summary()
    t = Table(title=f"corpus {s['corpus']} at {s['root']} ({s['classes']} content classes)")
    for col in ("split", "items", "speakers", "total s", "min s", "mean s", "max s"):
        t.add_column(col, justify="right")
    for name in ("all", "train", "val", "test"):
        d = s[name]
        if not d.get("items"):
            t.add_row(name, "0", "", "", "", "", "")
            continue
        t.add_row(
            name, str(d["items"]), str(d["speakers"]), f"{d['total_duration']:.1f}",
            f"{d['min_duration']:.2f}", f"{d['mean_duration']:.2f}", f"{d['max_duration']:.2f}",
        )
    lab = Table(title="label counts (all splits)")
    lab.add_column("label", justify="right")
    lab.add_column("text")
    lab.add_column("items", justify="right")
    for label, n in sorted(s["all"]["label_counts"].items()):
        lab.add_row(str(label), dm.label_names.get(int(label), ""), str(n))
    return [t, lab]


def cpo_table(wave: torch.Tensor, names: list[str], seed: int) -> Table:
    t = Table(title="CPOs applied to one utterance")
    for col in ("op", "length", "power ratio (dB)", "SNR vs original (dB)", "correlation", "levels", "ms"):
        t.add_column(col, justify="right")
    x = wave[None]
    p0 = x.pow(2).mean()
    for name in names:
        op = build_cpo(name)
        g = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        y = op(x, generator=g)
        ms = (time.perf_counter() - t0) * 1e3
        err = (y - x).pow(2).mean()
        snr = 10 * torch.log10(p0 / err.clamp_min(1e-20))
        corr = np.corrcoef(x[0].numpy(), y[0].numpy())[0, 1]
        t.add_row(
            op.name, f"{y.shape[-1]}/{x.shape[-1]}", f"{10 * torch.log10(y.pow(2).mean() / p0):+.2f}",
            f"{snr:.1f}", f"{corr:.3f}", str(len(torch.unique(y))), f"{ms:.1f}",
        )
    return t


def feature_table(batch: dict, cfg: DictConfig) -> Table:
    t = Table(title=f"features of one batch of {batch['wave'].shape[0]} utterances (wave {tuple(batch['wave'].shape)})")
    for col in ("config", "paper", "module", "batch shape", "lengths", "ms"):
        t.add_column(col)
    papers = {"logmel": "A", "mfcc": "A", "logmel_image": "B", "svs": "C", "mfcc_seq": "C baseline"}
    for name in cfg.demo.features:
        fcfg = OmegaConf.load(CONF_DIR / "features" / f"{name}.yaml")
        module = instantiate(fcfg)
        t0 = time.perf_counter()
        with torch.no_grad():
            feats, lengths = module(batch["wave"], batch["wave_lengths"])
        ms = (time.perf_counter() - t0) * 1e3
        lo, hi = int(lengths.min()), int(lengths.max())
        t.add_row(name, papers.get(name, ""), type(module).__name__, str(tuple(feats.shape)),
                  str(lo) if lo == hi else f"{lo}-{hi}", f"{ms:.0f}")
    return t


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="demo")
def main(cfg: DictConfig) -> None:
    console = Console(width=max(Console().width, 120))
    torch.manual_seed(cfg.demo.seed)
    t0 = time.perf_counter()
    dm = instantiate(cfg.data)
    console.print(f"[bold]1. default corpus[/bold]: {dm.corpus} at {dm.root}")
    dm.prepare_data()
    dm.setup()
    console.print(f"   ready in {time.perf_counter() - t0:.1f} s")
    for table in corpus_tables(dm):
        console.print(table)

    console.print("[bold]2. CPOs[/bold]")
    first = dm.datasets["train"][0]
    console.print(f"   utterance {first['id']} ({first['wave'].shape[0] / dm.sample_rate:.2f} s)")
    console.print(cpo_table(torch.from_numpy(first["wave"]), list(cfg.demo.cpos), cfg.demo.seed))

    console.print("[bold]3. features per paper[/bold]")
    batch = next(iter(dm.train_dataloader()))
    console.print(feature_table(batch, cfg))

    hc = HydraConfig.get()
    given = " ".join(o for o in hc.overrides.task if not o.split("=", 1)[0].lstrip("+~").startswith(DEMO_KEYS))
    console.print(f"[bold]4. train[/bold]: experiment={hc.runtime.choices.get('experiment')} on {dm.corpus}, "
                  f"{cfg.trainer.max_epochs} epochs (conf/demo.yaml{'; ' + given if given else ''})")
    out_dir = Path(hc.runtime.output_dir) / "train"
    summary = train(train_config(cfg, out_dir))
    m = summary["metrics"]
    t = Table(title=f"{summary['experiment']}: {summary['epochs']} epochs in {summary['wall_time_s']:.0f} s")
    for col in ("split", "accuracy", "mAP (Hamming ranking)"):
        t.add_column(col, justify="right")
    for split in ("val", "test"):
        t.add_row(split, f"{m.get(f'{split}/acc', float('nan')):.3f}", f"{m.get(f'{split}/map', float('nan')):.3f}")
    console.print(t)
    console.print(f"   best checkpoint: {summary['best_checkpoint']}")
    library_stage(console, cfg, dm, summary["best_checkpoint"], out_dir.parent)
    console.print(f"done in {time.perf_counter() - t0:.1f} s")


def library_stage(console: Console, cfg: DictConfig, dm, ckpt: str, run_dir: Path) -> None:
    """Index everything but the held-back test speakers into an encrypted library, search it with
    the held-back speakers' CPO'd utterances, decrypt the top hit and check it is bit-exact."""

    d = cfg.demo.index
    cipher_cfg = compose(config_name="index", overrides=[f"cipher={d.cipher}", f"index={d.index}", "ckpt_path=x",
                                                         f"cipher.key_material.key_file={run_dir / 'library.key'}"])
    lib_dir = run_dir / "library"
    # a new key only for a new library (speechret.crypto.keys): the key file sits beside it in the run dir
    cipher = build_cipher_from_cfg(cipher_cfg.cipher, create_key=True, library=lib_dir)
    hasher = Hasher.from_checkpoint(ckpt)
    test_idx = set(dm.split_indices["test"])
    library_items = [it for i, it in enumerate(dm.items) if i not in test_idx]
    lib = open_or_create(lib_dir, hasher, cipher, ckpt, {"kind": cipher_cfg.index.kind,
                                                        "params": dict(cipher_cfg.index.params)})
    console.print(f"[bold]5. encrypted library[/bold] ({d.cipher}, {cipher_cfg.index.kind} index) at {lib_dir}")
    report = index_items(lib, hasher, library_items, cipher, progress=True)
    console.print(f"   {len(lib)} items, {report.audio_seconds:.0f} s of audio in {report.wall_seconds:.1f} s "
                  f"({report.seconds_of_audio_per_second:.0f} s of audio per second); {len(report.failed)} failed")

    rng = np.random.default_rng(cfg.demo.seed)
    seen, queries = set(), []
    for i in rng.permutation(sorted(test_idx)):
        it = dm.items[int(i)]
        if it.label not in seen:
            seen.add(it.label)
            queries.append(it)
        if len(queries) == d.n_queries:
            break
    op = build_cpo(d.query_cpo)
    waves = [op(torch.from_numpy(load_audio(q.path, hasher.sample_rate))[None],
                generator=torch.Generator().manual_seed(cfg.demo.seed))[0].numpy() for q in queries]
    hits = search_codes(lib, hasher.codes_of_waves(waves), mode="topk", k=d.k)
    by_id = {it.id: it for it in dm.items}
    t = Table(title=f"6. queries by held-back speakers ({d.query_cpo} applied), top-{d.k} of {len(lib)}")
    for col in ("query", "text", "rank", "hit", "hit text", "BER", "same content"):
        t.add_column(col)
    correct = 0
    for q, qh in zip(queries, hits):
        for h in qh:
            hit = by_id[h["item_id"]]
            same = hit.label == q.label
            correct += same and h["rank"] == 1
            t.add_row(q.id if h["rank"] == 1 else "", q.text if h["rank"] == 1 else "", str(h["rank"]),
                      hit.id, hit.text, f"{h['ber']:.4f}", "yes" if same else "no")
    console.print(t)
    console.print(f"   top-1 same content: {correct}/{len(queries)}")
    top = hits[0][0]["item_id"]
    decrypted = lib.decrypt(top, cipher)
    original = to_pcm16(load_audio(by_id[top].path, hasher.sample_rate))
    exact = decrypted.shape == original.shape and bool(np.array_equal(decrypted, original))
    console.print(f"[bold]7. decrypt[/bold] the top hit {top}: {len(decrypted)} samples, "
                  f"{'bit-exact with the original' if exact else 'MISMATCH with the original'}")
    if not exact:
        raise SystemExit(f"decrypted {top} differs from its source audio")


if __name__ == "__main__":
    main()
