"""Data-parallel training (what a multi-worker Ray Train trial runs): ranks stay in lockstep."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clipstudy.engine import Trainer


def run_rank(rank: int, world: int, port: int, cfg, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        trainer = Trainer(cfg)
        result = trainer.fit()
        torch.save(
            {"weights": result.weights, "history": result.history, "steps": trainer.steps_per_epoch},
            f"{out}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_train_identical_weights_on_disjoint_shards(tiny_config, tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = tiny_config("lora", train__epochs=2, augment__hflip=0.5, lora__dropout=0.1)
    mp.start_processes(run_rank, args=(2, port, cfg, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    for name, weight in ranks[0]["weights"].items():
        torch.testing.assert_close(weight, ranks[1]["weights"][name], rtol=0, atol=0, msg=name)
    train_size = len(Trainer(cfg).data.train)
    assert ranks[0]["steps"] == -(-(train_size // 2) // cfg.train.batch_size)
    assert ranks[0]["history"][-1]["train/loss"] == ranks[1]["history"][-1]["train/loss"]
