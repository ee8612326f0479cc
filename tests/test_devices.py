"""ipg.core.devices.resolve_device: $IPG_DEVICE, else a GPU when available, else the CPU; a device
that does not exist here is one line. Every load site resolves the same way."""
import pytest
import torch

from ipg.attribution.methods import MethodSpec
from ipg.core.devices import ENV_VAR, model_device, resolve_device
from ipg.errors import IPGError


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def fake_cuda(monkeypatch, available: bool, count: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if available else 0)


@pytest.mark.parametrize("name", [None, "auto", "AUTO", " auto "])
def test_auto_takes_cuda_when_available_else_cpu(monkeypatch, name):
    fake_cuda(monkeypatch, True)
    assert resolve_device(name) == torch.device("cuda")
    fake_cuda(monkeypatch, False)
    assert resolve_device(name) == torch.device("cpu")


def test_the_environment_overrides_auto_but_not_an_explicit_device(monkeypatch):
    fake_cuda(monkeypatch, True, count=2)
    monkeypatch.setenv(ENV_VAR, "cpu")
    assert resolve_device() == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # an explicit name wins
    monkeypatch.setenv(ENV_VAR, "cuda:1")
    assert resolve_device() == torch.device("cuda", 1)
    monkeypatch.setenv(ENV_VAR, "auto")
    assert resolve_device() == torch.device("cuda")
    monkeypatch.setenv(ENV_VAR, "")
    assert resolve_device() == torch.device("cuda")


def test_explicit_names_and_devices(monkeypatch):
    fake_cuda(monkeypatch, True, count=2)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda")


@pytest.mark.parametrize("value, match", [
    ("gpu", r"IPG_DEVICE='gpu' is not a known device \(allowed: auto, cpu, cuda, cuda:N, mps\); "
            r"unset IPG_DEVICE or set it to 'auto', 'cpu'"),
    ("meta", r"IPG_DEVICE='meta' is not a known device"),
    ("cuda", r"IPG_DEVICE='cuda' cannot be used: CUDA is not available on this machine; unset IPG_DEVICE"),
])
def test_a_bad_environment_value_is_one_line_naming_it(monkeypatch, value, match):
    fake_cuda(monkeypatch, False)
    monkeypatch.setenv(ENV_VAR, value)
    with pytest.raises(IPGError, match=match) as info:
        resolve_device()
    assert "\n" not in str(info.value)


def test_a_bad_explicit_device_is_one_line_naming_it(monkeypatch):
    fake_cuda(monkeypatch, True, count=2)
    with pytest.raises(IPGError, match=r"device 'cuda:2' cannot be used: this machine has 2 CUDA "
                                       r"device\(s\) \(cuda:0..cuda:1\); pass 'auto', 'cpu'"):
        resolve_device("cuda:2")
    with pytest.raises(IPGError, match=r"device 'tpu' is not a known device"):
        resolve_device("tpu")
    fake_cuda(monkeypatch, False)
    with pytest.raises(IPGError, match=r"device 'cuda' cannot be used: CUDA is not available"):
        resolve_device("cuda")


def test_mps_is_checked(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(IPGError, match="MPS is not available"):
        resolve_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")


def test_load_sites_resolve_the_environment(monkeypatch, tiny_qwen2_dir, tmp_path):
    """load_model (and so every stage) follows $IPG_DEVICE; a bad value fails before loading."""
    from ipg.models.load import load_model

    fake_cuda(monkeypatch, False)
    monkeypatch.setenv(ENV_VAR, "cpu")
    model, _ = load_model(tiny_qwen2_dir)
    assert model_device(model) == torch.device("cpu")
    monkeypatch.setenv(ENV_VAR, "cuda")
    with pytest.raises(IPGError, match="IPG_DEVICE='cuda' cannot be used"):
        load_model(tmp_path / "not-even-a-model")  # the device is checked first


def test_checkpoints_are_keyed_by_the_resolved_device(monkeypatch, tmp_path):
    """None, 'auto' and the name they resolve to give one checkpoint key (a resumed run finds
    its chunks); another device gives another key (chunks are never mixed across devices)."""
    import ipg.attribution.run as run

    keys = []
    monkeypatch.setattr(run, "fingerprint", lambda paths, **kw: keys.append(kw["device"]) or "key")

    def stop(*args):
        raise RuntimeError("stop before loading")

    monkeypatch.setattr(run, "_load", stop)
    fake_cuda(monkeypatch, False)
    for device in (None, "auto", "cpu"):
        with pytest.raises(RuntimeError, match="stop"):
            run.run_method("model", "traj.parquet", "neurons", MethodSpec.parse({"kind": "ipg"}),
                           tmp_path / "x.parquet", tmp_path / "x.json", device=device,
                           chunk_prompts=2)
    assert keys == ["cpu", "cpu", "cpu"]
    monkeypatch.setenv(ENV_VAR, "cuda")
    with pytest.raises(IPGError, match="IPG_DEVICE='cuda' cannot be used"):
        run.run_method("model", "traj.parquet", "neurons", MethodSpec.parse({"kind": "ipg"}),
                       tmp_path / "x.parquet", tmp_path / "x.json", chunk_prompts=2)


def test_model_device_of_a_model_without_parameters():
    assert model_device(torch.nn.Identity()) == torch.device("cpu")
