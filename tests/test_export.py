"""`nettrain export`: ONNX graphs run by onnxruntime against `nettrain predict --format npy`
(float32, max abs error 1e-5, shapes and dtypes) for each layer alone and every net of configs/,
at opsets 13, 17 and 21; safetensors loaded by PyTorch as docs/formats.md shows; bad inputs."""

from __future__ import annotations

import errno
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke
from references import torch_layout_forward

import nettrain
from nettrain.config import config_from_dict, load_config
from nettrain.data.preprocess import affine
from nettrain.layers import LAYERS

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

REPO = Path(nettrain.__file__).resolve().parents[1]
OPSETS = (13, 17, 21)
TOLERANCE = 1e-5
IMAGE = [2, 7, 9]  # non-square, odd sizes: pooling rounds down
INPUTS: dict = {"conv1d_same_relu": [2, 11], "conv1d_strided": [3, 10]}  # where not IMAGE
# a residual block (conv-bn-relu, conv-bn, add, relu), a strided 1x1-projection shortcut read
# by name, and a concat of it with a strided conv of the block's output
GRAPH_NET = [
    {"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same", "name": "block_in"},
    {"type": "batchnorm"},
    {"type": "relu", "name": "a"},
    {"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same", "bias": False},
    {"type": "batchnorm"},
    {"type": "add", "from": [-1, "a"]},
    {"type": "relu"},
    {"type": "conv2d", "filters": 3, "kernel": 1, "stride": 2, "from": "a", "name": "shortcut"},
    {"type": "conv2d", "filters": 3, "kernel": 3, "stride": 2, "padding": 1, "from": 6},
    {"type": "concat", "from": [-1, "shortcut"]},
    {"type": "global_avgpool2d"},
    {"type": "dense", "units": 3},
]
# (name, layers, data section): each layer alone, with its options exercised, and a few pairs
LAYER_CASES = [
    ("dense", [{"type": "dense", "units": 5}], None),  # flattens (C, H, W) first
    ("dense_tanh_fused", [{"type": "dense", "units": 5, "activation": "tanh"}], None),
    ("dense_no_bias", [{"type": "dense", "units": 4, "bias": False}], None),
    (
        "conv2d_strided",
        [{"type": "conv2d", "filters": 3, "kernel": [3, 2], "stride": [2, 1], "padding": [1, 0]}],
        None,
    ),  # fmt: skip
    (
        "conv2d_same_relu",
        [{"type": "conv2d", "filters": 3, "kernel": 3, "padding": "same", "activation": "relu"}],
        None,
    ),  # fmt: skip
    (
        "conv2d_valid_stride2",
        [{"type": "conv2d", "filters": 2, "kernel": [2, 4], "stride": 2, "bias": False}],
        None,
    ),  # fmt: skip
    (
        "conv1d_same_relu",
        [{"type": "conv1d", "filters": 3, "kernel": 3, "padding": "same", "activation": "relu"}],
        None,
    ),  # fmt: skip
    (
        "conv1d_strided",
        [{"type": "conv1d", "filters": 2, "kernel": 4, "stride": 2, "padding": 1, "bias": False}],
        None,
    ),  # fmt: skip
    ("maxpool2d", [{"type": "maxpool2d", "size": 2}], None),
    ("maxpool2d_strided", [{"type": "maxpool2d", "size": [3, 2], "stride": [2, 3]}], None),
    ("avgpool2d", [{"type": "avgpool2d", "size": 2}], None),
    ("avgpool2d_overlap", [{"type": "avgpool2d", "size": [2, 3], "stride": 1}], None),
    ("global_avgpool2d", [{"type": "global_avgpool2d"}], None),
    ("batchnorm_conv", [{"type": "batchnorm", "eps": 0.001}], None),
    ("batchnorm_dense", [{"type": "dense", "units": 4}, {"type": "batchnorm"}], None),
    ("dropout", [{"type": "dropout", "drop_prob": 0.5}], None),
    ("relu", [{"type": "relu"}], None),
    ("leaky_relu", [{"type": "leaky_relu", "negative_slope": 0.2}], None),
    ("leaky_relu_activation", [{"type": "dense", "units": 3, "activation": "leaky_relu"}], None),
    ("tanh", [{"type": "tanh"}], None),
    ("sigmoid", [{"type": "sigmoid"}], None),
    ("linear", [{"type": "linear"}], None),
    ("softmax_image", [{"type": "softmax"}], None),  # over all units of the (C, H, W) sample
    (
        "conv2d_sigmoid",
        [{"type": "conv2d", "filters": 2, "kernel": 3, "activation": "sigmoid"}],
        None,
    ),  # fmt: skip
    # joins (docs/graphs.md): an identity shortcut from the input, three terms, concats of
    # images and of features, and a residual net with a 1x1-projection shortcut
    (
        "add_identity",
        [
            {"type": "conv2d", "filters": 2, "kernel": 3, "padding": "same"},
            {"type": "add", "from": [-1, "input"]},
        ],
        None,
    ),  # fmt: skip
    (
        "add_three",
        [
            {"type": "relu", "name": "r"},
            {"type": "tanh", "from": "input"},
            {"type": "add", "from": ["r", -1, "input"]},
        ],
        None,
    ),  # fmt: skip
    (
        "concat_image",
        [{"type": "conv2d", "filters": 3, "kernel": 1}, {"type": "concat", "from": ["input", -1]}],
        None,
    ),  # fmt: skip
    (
        "concat_features",
        [
            {"type": "dense", "units": 3, "name": "h"},
            {"type": "dense", "units": 2},
            {"type": "concat", "from": ["h", -1, "h"]},
        ],
        None,
    ),  # fmt: skip
    ("residual_net", GRAPH_NET, None),
    (
        "preprocess_standardize_channel",
        [{"type": "dense", "units": 3}],
        {"preprocess": {"name": "standardize", "per": "channel"}},
    ),  # fmt: skip
    (
        "preprocess_minmax_feature",
        [{"type": "dense", "units": 3}],
        {"preprocess": {"name": "minmax", "per": "feature", "low": -1, "high": 1}},
    ),  # fmt: skip
    (
        "preprocess_scale",
        [{"type": "relu"}],
        {"preprocess": {"name": "scale", "factor": 0.5}},
    ),  # fmt: skip
]


def n_outputs(cfg: dict) -> int:
    from nettrain.net.network import build_network

    cfg, _ = config_from_dict(cfg)
    return build_network(cfg["model"], np.float32, cfg["model"]["input"]).n_outputs


def layer_checkpoint(folder: Path, layers, data_section, shape=IMAGE) -> Path:
    """A checkpoint of a net of ``layers`` on inputs of ``shape`` after one short epoch on random
    data (batchnorm's running statistics move away from 0 and 1)."""
    cfg = {
        "seed": 3,
        "model": {"input": shape, "layers": layers, "loss": "squared_error"},
        "train": {"epochs": 1, "batch_size": 8, "optimizer": {"name": "sgd", "lr": 0.01}},
    }
    if data_section:
        cfg["data"] = data_section
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((24, *shape)) * 2 + 0.5).astype(np.float32)
    y = rng.standard_normal((24, n_outputs(cfg))).astype(np.float32)
    model = nettrain.Model.from_config(cfg)
    model.fit(x, y)
    path = folder / "net.npz"
    model.save(path)
    return path


def cli_predict(ckpts, x: np.ndarray, folder: Path) -> np.ndarray:
    """What `nettrain predict CKPT... INPUT --format npy` writes."""
    inputs, out = folder / "inputs.npy", folder / "predicted.npy"
    np.save(inputs, x)
    invoke("predict", *ckpts, inputs, "--format", "npy", "--output", out)
    return np.load(out)


def onnx_run(ckpts, x: np.ndarray, folder: Path, opset: int) -> np.ndarray:
    path = folder / f"net-{opset}.onnx"
    args = ["export", *map(str, ckpts), "--format", "onnx", "--output", str(path)]
    invoke(*args, "--opset", opset)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == opset
    assert model.ir_version == onnx.helper.find_min_ir_version_for(model.opset_import)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, out.name, out.type) == (
        "input", "tensor(float)", "output", "tensor(float)",
    )  # fmt: skip
    assert isinstance(inp.shape[0], str)  # the batch dimension is dynamic
    return session.run(None, {"input": x})[0]


def assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert np.max(np.abs(got - expected)) <= TOLERANCE


@pytest.fixture(scope="module")
def layer_checkpoints(tmp_path_factory):
    made = {}

    def get(name):
        if name not in made:
            case = next(c for c in LAYER_CASES if c[0] == name)
            folder = tmp_path_factory.mktemp(name)
            made[name] = layer_checkpoint(folder, *case[1:], INPUTS.get(name, IMAGE))
        return made[name]

    return get


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("case", [c[0] for c in LAYER_CASES])
def test_each_layer_exports_to_what_predict_gives(case, opset, layer_checkpoints, tmp_path):
    ckpt = layer_checkpoints(case)
    shape = INPUTS.get(case, IMAGE)
    x = (np.random.default_rng(opset).standard_normal((5, *shape)) * 2).astype(np.float32)
    expected = cli_predict([ckpt], x, tmp_path)
    assert_same(onnx_run([ckpt], x, tmp_path, opset), expected)
    assert_same(onnx_run([ckpt], x[:1], tmp_path, opset), expected[:1])  # another batch size


def test_every_layer_type_has_a_case_here():
    covered = {layer["type"] for _, layers, _ in LAYER_CASES for layer in layers}
    assert covered == set(LAYERS)
    assert [kind for kind, cls in LAYERS.items() if cls.onnx is None or cls.TORCH is None] == []


def config_checkpoint(config: Path, folder: Path):
    """(checkpoint, inputs): a net of ``config`` after one short epoch; MNIST nets on a few
    random images (as good as random init for the comparison), others on their own data."""
    cfg, _ = load_config(config, ["train.epochs=1"])
    model = nettrain.Model.from_config(config, {"train.epochs": 1, "train.batch_size": 16})
    rng = np.random.default_rng(1)
    if cfg["data"]["dataset"] and cfg["data"]["dataset"]["name"] == "mnist":
        shape = cfg["model"]["input"]
        model.fit(rng.random((48, *shape)).astype(np.float32), rng.integers(0, 10, 48))
    else:
        model.fit()
    model.save(folder / "net.npz")
    x = rng.standard_normal((7, *model.input_shape)).astype(np.float32)
    return folder / "net.npz", x


CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml") if "tanh-cross" not in p.name)


@pytest.fixture(scope="module")
def config_checkpoints(tmp_path_factory):
    made = {}

    def get(config):
        if config not in made:
            made[config] = config_checkpoint(config, tmp_path_factory.mktemp(config.stem))
        return made[config]

    return get


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_every_config_net_exports_to_what_predict_gives(config, opset, config_checkpoints,
                                                        tmp_path):  # fmt: skip
    ckpt, x = config_checkpoints(config)
    assert_same(onnx_run([ckpt], x, tmp_path, opset), cli_predict([ckpt], x, tmp_path))


def test_an_ensemble_exports_to_one_graph_of_the_mean(tmp_path):
    ckpts = []
    for seed in (1, 2, 3):
        model = nettrain.Model.from_config(
            REPO / "configs" / "xor-mlp.yaml", {"seed": seed, "train.epochs": 1}
        )
        model.fit()
        ckpts.append(tmp_path / f"net{seed}.npz")
        model.save(ckpts[-1])
    x = np.random.default_rng(0).standard_normal((9, 2)).astype(np.float32)
    expected = cli_predict(ckpts, x, tmp_path)
    singles = [cli_predict([c], x, tmp_path) for c in ckpts]
    assert np.max(np.abs(expected - np.mean(singles, axis=0))) < 1e-6
    assert_same(onnx_run(ckpts, x, tmp_path, 17), expected)
    graph = onnx.load(str(tmp_path / "net-17.onnx")).graph
    assert [n.op_type for n in graph.node].count("Mean") == 1


def test_the_metadata_holds_the_version_and_config(layer_checkpoints, tmp_path):
    ckpt = layer_checkpoints("dense")
    onnx_run([ckpt], np.zeros((1, *IMAGE), np.float32), tmp_path, 17)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "net-17.onnx")).metadata_props}
    assert props["nettrain_version"] == nettrain.__version__
    assert json.loads(props["nettrain_config"])["model"]["layers"][0]["units"] == 5


def test_the_default_opset_is_17(layer_checkpoints, tmp_path, cli_call):
    out = tmp_path / "d.onnx"
    args = ["export", str(layer_checkpoints("relu")), "--format", "onnx", "--output", str(out)]
    cli_call(*args)
    assert onnx.load(str(out)).opset_import[0].version == 17


# -- refused ---------------------------------------------------------------------------------


def test_a_layer_without_an_onnx_form_is_refused_by_name(
    layer_checkpoints, tmp_path, monkeypatch, cli_call
):
    """A layer kind added to nettrain without an exporter is an error naming it, not a graph that
    skips it."""
    monkeypatch.setattr(LAYERS["avgpool2d"], "onnx", None)
    out = tmp_path / "x.onnx"
    args = ["export", str(layer_checkpoints("avgpool2d")), "--format", "onnx", "--output", str(out)]
    result = cli_call(*args, code=2)
    assert "layer 0 (avgpool2d)" in result.output and "cannot be exported to ONNX" in result.output
    assert not out.exists() and not list(tmp_path.glob(".x.onnx*"))


def test_a_fused_activation_without_an_onnx_form_is_refused(
    layer_checkpoints, tmp_path, monkeypatch, cli_call
):
    """dense applies its tanh in its own kernels; the graph writes it as the tanh layer does."""
    monkeypatch.setattr(LAYERS["tanh"], "onnx", None)
    out = tmp_path / "x.onnx"
    ckpt = layer_checkpoints("dense_tanh_fused")
    output = cli_call("export", ckpt, "--format", "onnx", "--output", out, code=2).output
    assert "layer 0 (tanh)" in output and "cannot be exported to ONNX" in output
    assert not out.exists()


def test_a_layer_without_a_torch_form_is_refused_by_name(
    layer_checkpoints, tmp_path, monkeypatch, cli_call
):
    monkeypatch.setattr(LAYERS["batchnorm"], "TORCH", None)
    out = tmp_path / "x.safetensors"
    ckpt = layer_checkpoints("batchnorm_dense")
    output = cli_call("export", ckpt, "--format", "safetensors", "--output", out, code=2).output
    assert "layer 1 (batchnorm)" in output and "no PyTorch form" in output
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "onnx", "--opset", "12"], "opset 12 is not supported"),
        (["--format", "tflite"], "'tflite' is not one of 'onnx', 'safetensors'"),
        (["--format", "safetensors", "--opset", "13"], "applies to --format onnx only"),
    ],
)
def test_bad_options_are_refused(args, message, layer_checkpoints, tmp_path, cli_call):
    out = tmp_path / "x.out"
    output = cli_call("export", layer_checkpoints("relu"), *args, "--output", out, code=2).output
    assert message in output and output.startswith("error:")
    assert not out.exists()


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path, cli_call):
    fake = tmp_path / "weights.npz"
    np.savez(fake, **{"layers.0.weight": np.zeros((2, 2))})
    output = cli_call(
        "export", fake, "--format", "onnx", "--output", tmp_path / "x.onnx", code=2
    ).output
    assert "not a nettrain checkpoint" in output
    output = cli_call(
        "export", tmp_path / "none.npz", "--format", "onnx", "--output", "x", code=2
    ).output
    assert "not found" in output


def test_nets_with_other_inputs_or_outputs_are_no_ensemble(layer_checkpoints, tmp_path, cli_call):
    dense5, dense4 = layer_checkpoints("dense"), layer_checkpoints("dense_no_bias")
    relu = layer_checkpoints("relu")
    out = tmp_path / "x.onnx"
    output = cli_call("export", dense5, dense4, "--format", "onnx", "--output", out, code=2).output
    assert "outputs: 4" in output and "cannot join the ensemble" in output
    other = tmp_path / "flat.npz"
    model = nettrain.Model.from_config(
        {
            "model": {
                "input": [3],
                "layers": [{"type": "dense", "units": 5}],
                "loss": "squared_error",
            },
            "train": {"epochs": 1},
        }  # fmt: skip
    )
    model.fit(np.ones((4, 3), np.float32), np.ones((4, 5), np.float32))
    model.save(other)
    output = cli_call("export", dense5, other, "--format", "onnx", "--output", out, code=2).output
    assert "inputs of shape (3,)" in output
    output = cli_call(
        "export", relu, relu, "--format", "safetensors", "--output", out, code=2
    ).output
    assert "takes one checkpoint" in output
    assert not out.exists()


def test_an_unwritable_output_is_refused_and_nothing_is_left(
    layer_checkpoints, tmp_path, monkeypatch, cli_call
):
    ckpt = layer_checkpoints("relu")
    output = cli_call(
        "export", ckpt, "--format", "onnx", "--output", tmp_path / "no" / "x.onnx", code=2
    ).output
    assert "could not write the file" in output
    output = cli_call("export", ckpt, "--format", "onnx", "--output", ckpt, code=2).output
    assert "overwrite the checkpoint" in output
    assert nettrain.load(ckpt).n_outputs == 126  # still whole
    # a folder the system refuses to write into, as it refuses a user without write permission
    # (by a stand-in for mkstemp: root, CI's user, writes into a read-only folder)
    (tmp_path / "ro").mkdir()
    real_mkstemp = tempfile.mkstemp

    def refusing_mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == tmp_path / "ro":
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refusing_mkstemp)
    output = cli_call(
        "export", ckpt, "--format", "onnx", "--output", tmp_path / "ro" / "x.onnx", code=2
    ).output
    assert "could not write the file" in output and "Permission denied" in output
    assert not list((tmp_path / "ro").iterdir())


def test_a_refused_export_leaves_an_existing_file_as_it_was(
    layer_checkpoints, tmp_path, monkeypatch, cli_call
):
    existing = tmp_path / "old.onnx"
    existing.write_bytes(b"old")
    monkeypatch.setattr(LAYERS["relu"], "onnx", None)
    cli_call("export", layer_checkpoints("relu"), "--format", "onnx", "--output", existing, code=2)
    assert existing.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["old.onnx"]


# -- safetensors and PyTorch -----------------------------------------------------------------


def test_safetensors_holds_the_weights_in_torch_layouts(layer_checkpoints, tmp_path, cli_call):
    from safetensors import safe_open

    ckpt = layer_checkpoints("batchnorm_dense")
    out = tmp_path / "net.safetensors"
    cli_call("export", ckpt, "--format", "safetensors", "--output", out)
    arrays = dict(np.load(ckpt))
    with safe_open(str(out), "numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    assert meta["format"] == "pt"
    assert json.loads(meta["nettrain_config"])["model"]["layers"][1]["type"] == "batchnorm"
    assert set(tensors) == {
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
        "layers.1.running_mean", "layers.1.running_var",
    }  # fmt: skip
    np.testing.assert_array_equal(tensors["layers.0.weight"], arrays["layers.0.weight"].T)
    assert tensors["layers.0.weight"].shape == (4, 126)
    for k in tensors:
        if k != "layers.0.weight":
            np.testing.assert_array_equal(tensors[k], arrays[k])


def readme_torch_code() -> str:
    text = (REPO / "docs" / "formats.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    code = [b for b in blocks if "class TorchNet" in b]
    assert len(code) == 1, "docs/formats.md's torch example is missing"
    return code[0]


TORCH_CASES = [c[0] for c in LAYER_CASES if not c[2]]  # the torch net takes preprocessed inputs


def safetensors_of(ckpt, folder: Path) -> tuple[dict, dict]:
    """(the resolved config in its metadata, its tensors) of ``nettrain export`` of ``ckpt``."""
    from safetensors import safe_open

    out = folder / "net.safetensors"
    invoke("export", ckpt, "--format", "safetensors", "--output", out)
    with safe_open(str(out), "numpy") as f:
        config = json.loads(f.metadata()["nettrain_config"])
        return config, {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


@pytest.mark.parametrize("case", TORCH_CASES)
def test_safetensors_numbers_give_predict_s_outputs(case, layer_checkpoints, tmp_path):
    """Without PyTorch: the exported tensors, run by a numpy forward written for PyTorch's
    layouts (tests/references.py), give what `nettrain predict` gives."""
    ckpt = layer_checkpoints(case)
    config, tensors = safetensors_of(ckpt, tmp_path)
    shape = INPUTS.get(case, IMAGE)
    x = (np.random.default_rng(5).standard_normal((4, *shape)) * 2).astype(np.float32)
    got = torch_layout_forward(config, tensors, x)
    expected = cli_predict([ckpt], x, tmp_path)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= TOLERANCE


def test_safetensors_numbers_of_every_config_net(config_checkpoints, tmp_path):
    errors = {}
    for config in CONFIGS:
        ckpt, x = config_checkpoints(config)
        net, meta, _ = nettrain.load(ckpt).members[0]
        spec, seen = meta["data"]["preprocess"], x
        if spec:  # the exported net takes the inputs after data.preprocess, x * a + b
            a, b = affine(spec, meta["preprocess_stats"], net.input_shape)
            seen = x * a.astype(np.float32) + b.astype(np.float32)
        resolved, tensors = safetensors_of(ckpt, tmp_path)
        got = torch_layout_forward(resolved, tensors, seen)
        expected = cli_predict([ckpt], x, tmp_path)
        errors[config.stem] = float(np.max(np.abs(got - expected)))
    print(errors)
    assert len(errors) == len(CONFIGS) and max(errors.values()) <= TOLERANCE


@pytest.mark.parametrize("case", TORCH_CASES)
def test_torch_loads_the_safetensors_as_the_readme_shows(
    case, layer_checkpoints, tmp_path, cli_call
):
    torch = pytest.importorskip("torch")
    ckpt = layer_checkpoints(case)
    out = tmp_path / "net.safetensors"
    cli_call("export", ckpt, "--format", "safetensors", "--output", out)
    shape = INPUTS.get(case, IMAGE)
    x = (np.random.default_rng(5).standard_normal((4, *shape)) * 2).astype(np.float32)
    expected = cli_predict([ckpt], x, tmp_path)
    scope = {"__name__": "readme"}
    exec(readme_torch_code().replace("net.safetensors", str(out)), scope)
    with torch.no_grad():
        got = scope["model"](torch.from_numpy(x)).numpy()
    assert_same(got.reshape(len(x), -1), expected)


def test_torch_runs_every_config_net(config_checkpoints, tmp_path, cli_call):
    torch = pytest.importorskip("torch")
    errors = {}
    for config in CONFIGS:
        ckpt, x = config_checkpoints(config)
        net, meta, _ = nettrain.load(ckpt).members[0]
        spec, seen = meta["data"]["preprocess"], x
        if spec:  # the torch net takes the inputs after data.preprocess, x * a + b
            a, b = affine(spec, meta["preprocess_stats"], net.input_shape)
            seen = x * a.astype(np.float32) + b.astype(np.float32)
        out = tmp_path / f"{config.stem}.safetensors"
        cli_call("export", ckpt, "--format", "safetensors", "--output", out)
        scope = {"__name__": "readme"}
        exec(readme_torch_code().replace("net.safetensors", str(out)), scope)
        with torch.no_grad():
            got = scope["model"](torch.from_numpy(seen)).numpy()
        expected = cli_predict([ckpt], x, tmp_path)
        errors[config.stem] = float(np.max(np.abs(got.reshape(len(x), -1) - expected)))
    print(errors)
    assert len(errors) == len(CONFIGS) and max(errors.values()) <= TOLERANCE
