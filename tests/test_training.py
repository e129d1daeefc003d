"""Real TRL training on a tiny model: subnetwork runs keep frozen entries bit-identical."""

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from subnet_rl.algorithms import ALGORITHMS
from subnet_rl.tasks import addition as task
from subnet_rl.config import RunSpec
from subnet_rl.data import synthetic_addition, write_dataset
from subnet_rl.masks import save_masks
from subnet_rl.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, save_checkpoint
from subnet_rl.training import train

SMALL = TinyModelSpec(hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2, num_kv_heads=1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    tokenizer = build_char_tokenizer(task.ALPHABET)
    save_checkpoint(build_tiny_model(SMALL, tokenizer, seed=0), tokenizer, root / "start")
    paths = {"train": root / "train.parquet", "test": root / "test.parquet"}
    write_dataset(synthetic_addition(2, 64, 8, seed=0), paths)
    start = load_file(root / "start" / "model.safetensors")
    g = torch.Generator().manual_seed(0)
    masks = {name: torch.rand(t.shape, generator=g) < 0.5 for name, t in start.items()}
    save_masks(masks, root / "mask.safetensors", "tol=1e-05")
    return root, paths["train"], start, masks


def moved_inside_frozen_identical(checkpoint, start, masks) -> int:
    """Asserts every entry outside the mask kept its start bits; returns how many inside it moved."""
    after = load_file(checkpoint / "model.safetensors")
    moved = 0
    for name, before in start.items():
        frozen = ~masks[name]
        assert torch.equal(after[name][frozen].view(torch.int32), before[frozen].view(torch.int32)), name
        moved += int((after[name][masks[name]] != before[masks[name]]).sum())
    return moved


def _spec(algorithm, **kw):
    # Large lr and weight decay: without the mask, every entry would move.
    group = {"num_generations": 4} if algorithm in ("grpo", "rloo") else {}
    return RunSpec.from_dict({"name": f"t-{algorithm}", "algorithm": algorithm, "lr": 1e-2, "steps": 3, "seed": 0,
                              "dataset": "d", "batch_size": 4, "weight_decay": 0.1, **group, **kw})


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_subnetwork_training_keeps_frozen_entries_bit_identical(setup, algorithm):
    """Every algorithm of the registry trains a few steps, and moves only its subnetwork."""
    root, train_data, start, masks = setup
    out = root / f"subnet-{algorithm}"
    pairs = train_data if ALGORITHMS[algorithm].reads_pairs else None
    summary = train(_spec(algorithm), root / "start", train_data, out, pairs=pairs, mask=root / "mask.safetensors")
    changed_inside = moved_inside_frozen_identical(out, start, masks)
    assert changed_inside > 0.5 * sum(int(m.sum()) for m in masks.values())
    assert summary["subnetwork"]["trainable"] == sum(int(m.sum()) for m in masks.values())


def test_full_training_moves_entries_outside_the_mask(setup):
    """Control for the test above: the same run without a mask changes frozen entries too."""
    root, train_data, start, masks = setup
    train(_spec("sft"), root / "start", train_data, root / "full-sft")
    after = load_file(root / "full-sft" / "model.safetensors")
    moved = sum(int((after[n][~masks[n]] != start[n][~masks[n]]).sum()) for n in start)
    assert moved > 0.5 * sum(int((~m).sum()) for m in masks.values())


def test_bf16_precision_stores_bf16_weights(setup):
    root, train_data, _, _ = setup
    train(_spec("sft", precision="bf16"), root / "start", train_data, root / "bf16-sft")
    after = load_file(root / "bf16-sft" / "model.safetensors")
    assert {t.dtype for t in after.values()} == {torch.bfloat16}


class GradientProbe(TrainerCallback):
    """Reads every gradient right before the optimizer step (after clipping), as the optimizer sees it."""

    def __init__(self, model, masks):
        self.model, self.masks, self.frozen_nonzero, self.trainable_nonzero = model, masks, 0, 0

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        for name, param in self.model.named_parameters():
            if param.grad is not None:
                keep = self.masks[name].to(param.grad.device)
                self.frozen_nonzero += int((param.grad[~keep] != 0).sum())
                self.trainable_nonzero += int((param.grad[keep] != 0).sum())


def test_gradients_are_masked_before_the_optimizer_step(setup, tmp_path):
    """The paper's m * grad: frozen entries reach clipping and the optimizer with exactly zero gradient
    (restoring weights afterwards alone would hide a missing gradient hook)."""
    from subnet_rl.masks import MaskFile
    from subnet_rl.models import load_checkpoint
    from subnet_rl.subnetwork import SubnetworkMask
    from subnet_rl.training import build_trainer

    root, train_data, _, masks = setup
    spec = _spec("sft")
    model, tokenizer = load_checkpoint(root / "start")
    probe = GradientProbe(model, masks)
    callbacks = [SubnetworkMask(model, MaskFile(root / "mask.safetensors")), probe]
    trainer = build_trainer(spec, model, tokenizer, pd.read_parquet(train_data), str(tmp_path), callbacks)
    trainer.train()
    assert probe.trainable_nonzero > 0
    assert probe.frozen_nonzero == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_subnetwork_training_on_a_gpu_keeps_frozen_entries(setup, tmp_path):
    """Built on the CPU, trained on the GPU the Trainer moves the model to: masks follow the device."""
    root, train_data, start, masks = setup
    out = tmp_path / "gpu-subnet"
    summary = train(_spec("sft"), root / "start", train_data, out, mask=root / "mask.safetensors")
    assert summary["environment"]["device"].startswith("cuda")
    assert moved_inside_frozen_identical(out, start, masks) > 0


def test_training_record_says_where_and_with_what(setup):
    root, train_data, _, _ = setup
    summary = train(_spec("sft"), root / "start", train_data, root / "recorded")
    env = json.loads((root / "recorded" / "training.json").read_text())["environment"]
    assert env == summary["environment"]
    assert env["device"] == "cpu" and env["deterministic"] is True  # CPU runs are bit-exact
    assert {"torch", "transformers", "trl", "accelerate", "datasets"} <= set(env["versions"])
    args = env["training_arguments"]
    assert args["bf16"] is False and args["learning_rate"] == 1e-2 and args["full_determinism"] is False


def test_autocast_and_determinism_are_explicit_settings(setup, tmp_path):
    """precision is the weights' dtype; mixed precision only with autocast: bf16, on any device."""
    root, train_data, _, _ = setup
    a = train(_spec("sft", autocast="bf16", deterministic=True), root / "start", train_data, tmp_path / "a")
    b = train(_spec("sft", autocast="bf16", deterministic=True), root / "start", train_data, tmp_path / "b")
    args = a["environment"]["training_arguments"]
    assert args["bf16"] is True and args["full_determinism"] is True
    weights_a, weights_b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert {t.dtype for t in weights_a.values()} == {torch.float32}  # fp32 master weights under bf16 compute
    assert all(torch.equal(weights_a[n], weights_b[n]) for n in weights_a)  # same seed, bit-identical


def test_two_process_ddp_subnetwork_run(setup, tmp_path):
    """resources.train.gpu > 1 runs the job under `accelerate launch` (DDP); here 2 CPU processes (gloo).
    The subnetwork callback holds under DDP: frozen entries stay bit-identical, the mask's entries move."""
    from subnet_rl.launch import train_job

    root, train_data, start, masks = setup
    out = tmp_path / "ddp"
    train_job(_spec("sft"), root / "start", train_data, out, mask=root / "mask.safetensors", processes=2,
              cpu_processes=True)
    record = json.loads((out / "training.json").read_text())
    assert record["environment"]["world_size"] == 2 and record["environment"]["sharding"] == "ddp"
    assert moved_inside_frozen_identical(out, start, masks) > 0


@pytest.mark.parametrize("algorithm", ["sft", "grpo"])
def test_without_weight_decay_masks_cost_one_byte_per_parameter_and_change_nothing(setup, tmp_path, monkeypatch,
                                                                                   algorithm):
    """weight_decay 0: a zero-gradient entry never moves under AdamW, so no start copy is kept (1 byte per
    parameter, the bool mask); the run is bit-identical to one that keeps and restores start copies."""
    from subnet_rl.subnetwork import SubnetworkMask

    root, train_data, start, masks = setup
    spec = _spec(algorithm, weight_decay=0.0)
    lean = train(spec, root / "start", train_data, tmp_path / "lean", mask=root / "mask.safetensors")
    assert lean["subnetwork"]["mask_state_bytes"] == lean["subnetwork"]["total"]
    assert moved_inside_frozen_identical(tmp_path / "lean", start, masks) > 0
    # The same run keeping a start copy of every parameter and restoring frozen entries after each step.
    monkeypatch.setattr(SubnetworkMask, "on_train_begin",
                        lambda self, args, state, control, model=None, **kw: self.bind(model, None))
    copies = train(spec, root / "start", train_data, tmp_path / "copies", mask=root / "mask.safetensors")
    assert copies["subnetwork"]["mask_state_bytes"] == 5 * copies["subnetwork"]["total"]  # bool + fp32 copy
    assert (tmp_path / "lean" / "model.safetensors").read_bytes() == (tmp_path / "copies" / "model.safetensors").read_bytes()


def test_with_weight_decay_start_copies_are_kept_for_decayed_parameters_only(setup, tmp_path):
    root, train_data, start, masks = setup
    summary = train(_spec("sft"), root / "start", train_data, tmp_path / "wd", mask=root / "mask.safetensors")
    total, state = summary["subnetwork"]["total"], summary["subnetwork"]["mask_state_bytes"]
    assert total < state < 5 * total  # norms are not decayed by the Trainer: no copy of them
    assert moved_inside_frozen_identical(tmp_path / "wd", start, masks) > 0


@pytest.mark.parametrize("env", [{"ACCELERATE_USE_FSDP": "true"},
                                 {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}])
def test_flattened_parameters_are_refused_for_subnetwork_runs(setup, monkeypatch, env):
    from subnet_rl.masks import MaskFile
    from subnet_rl.models import load_checkpoint
    from subnet_rl.subnetwork import SubnetworkMask

    root, _, _, _ = setup
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    model, _ = load_checkpoint(root / "start")
    with pytest.raises(ValueError, match="FSDP1 and DeepSpeed ZeRO-3"):
        SubnetworkMask(model, MaskFile(root / "mask.safetensors"))
    if env.get("ACCELERATE_USE_FSDP"):  # FSDP2 keeps per-parameter DTensors: accepted
        monkeypatch.setenv("FSDP_VERSION", "2")
        assert SubnetworkMask(model, MaskFile(root / "mask.safetensors")).trainable > 0


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "bnpo"])
def test_grpo_loss_type_and_iterations_reach_trl_and_the_record(setup, tmp_path, loss_type):
    root, train_data, start, _ = setup
    summary = train(_spec("grpo", grpo_loss_type=loss_type, num_iterations=2), root / "start", train_data, tmp_path / "g")
    args = summary["environment"]["training_arguments"]
    assert (args["loss_type"], args["num_iterations"]) == (loss_type, 2)
    assert summary["run"]["grpo_loss_type"] == loss_type
    after = load_file(tmp_path / "g" / "model.safetensors")
    assert any(not torch.equal(after[n], start[n]) for n in start)  # it trained


@pytest.mark.parametrize("algorithm", ["grpo", "dpo", "kto"])
def test_the_same_seed_gives_bit_identical_masks_on_cpu(setup, algorithm):
    """Two runs of one spec (sampling included, for GRPO) give the same checkpoint bits, so the same mask;
    another seed gives another run (KTO too, whose trainer reads data in order: the seed shuffles it)."""
    from subnet_rl.diff import Criterion
    from subnet_rl.mask_extraction import extract_masks

    root, train_data, _, _ = setup
    pairs = train_data if ALGORITHMS[algorithm].reads_pairs else None
    masks, weights = [], []
    for attempt, seed in enumerate([3, 3, 4]):
        out = root / f"seed-{algorithm}-{attempt}"
        train(_spec(algorithm).replaced(seed=seed, weight_decay=0.0),
              root / "start", train_data, out, pairs=pairs)
        mask = root / f"mask-{algorithm}-{attempt}.safetensors"
        extract_masks(root / "start", out, Criterion.parse("tol=1e-05"), mask)
        masks.append(mask.read_bytes())
        weights.append((out / "model.safetensors").read_bytes())
    assert masks[0] == masks[1] and weights[0] == weights[1]
    assert weights[0] != weights[2]


@pytest.mark.parametrize("optimizer, expected", [("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW)])
def test_the_optimizer_setting_chooses_the_trainers_optimizer_and_it_trains(setup, tmp_path, optimizer, expected):
    """`optimizer: sgd` trains with torch's plain SGD (no momentum: no state), adamw with the Trainer's
    default fused AdamW and its two moments per parameter; both move the weights."""
    from subnet_rl.models import load_checkpoint
    from subnet_rl.training import build_trainer

    root, train_data, start, _ = setup
    model, tokenizer = load_checkpoint(root / "start")
    trainer = build_trainer(_spec("sft", optimizer=optimizer), model, tokenizer, pd.read_parquet(train_data),
                            str(tmp_path), [])
    trainer.train()
    used = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # under accelerate's wrapper
    assert type(used) is expected
    if optimizer == "sgd":
        assert all(g["momentum"] == 0 and not g["nesterov"] for g in used.param_groups)
        assert all(s.get("momentum_buffer") is None for s in used.state.values())
    else:
        assert used.defaults["fused"] is True
        assert used.state and all({"exp_avg", "exp_avg_sq"} <= set(s) for s in used.state.values())
    after = {n: t.detach().cpu() for n, t in trainer.model.state_dict().items()}
    moved = sum(int((after[n] != start[n]).sum()) for n in start)
    assert moved > 0.5 * sum(t.numel() for t in start.values())


def test_an_sgd_subnetwork_run_keeps_frozen_entries_under_weight_decay(setup, tmp_path):
    """SGD adds the decay to the gradient the mask zeroed, so frozen entries would shrink: the start copies
    of the decayed parameters restore them, as under AdamW."""
    root, train_data, start, masks = setup
    summary = train(_spec("sft", optimizer="sgd"), root / "start", train_data, tmp_path / "sgd",
                    mask=root / "mask.safetensors")
    assert summary["environment"]["training_arguments"]["optim"] == "sgd"
    assert moved_inside_frozen_identical(tmp_path / "sgd", start, masks) > 0
