#!/usr/bin/python3
"""Generate data/vae/diffusers_vae.safetensors: what diffusers' AutoencoderKL
(v0.30.3) computes for the paths the reference pipeline cases do not cover:
enable_tiling() decoding and encoding (tiled_decode / tiled_encode with
blend_v / blend_h), and the encoder (module by module for pipe_small, the
posterior mean for pipe_ms).

Run with Debian's python3-torch (torch 1.13, CPU, float32, 1 thread) and the
upstream sources on the path (nothing is downloaded, nothing upstream is
copied into this repository):
    git -C <diffusers.git> archive v0.30.3 src/diffusers | tar x -C /tmp/up
    git -C <huggingface_hub.git> archive v0.23.5 src/huggingface_hub | tar x -C /tmp/up
    /usr/bin/python3 tools/gen_vae_fixture.py --src /tmp/up/src data
Debian's python lacks a few of diffusers' import-time dependencies (packaging,
filelock, tqdm, safetensors); this script puts minimal stand-ins for them on
sys.path (only their names are used while importing; the weights are read by
the small safetensors reader below).
Only needed to regenerate the fixture; the build and tests never run Python.
"""
import argparse, json, os, struct, sys, tempfile
import numpy as np

SHIMS = {
    "packaging/__init__.py": "",
    "packaging/version.py": '''
import re
class InvalidVersion(ValueError): pass
class Version:
    def __init__(self, s):
        self.public = str(s)
        self.release = tuple(int(n) for n in re.findall(r"\\d+", str(s).split("+")[0])[:3])
        self.base_version = ".".join(map(str, self.release))
        self.major = self.release[0] if self.release else 0
        self.minor = self.release[1] if len(self.release) > 1 else 0
        self.is_prerelease = False
    def __lt__(s, o): return s.release < o.release
    def __le__(s, o): return s.release <= o.release
    def __gt__(s, o): return s.release > o.release
    def __ge__(s, o): return s.release >= o.release
    def __eq__(s, o): return s.release == o.release
    def __str__(s): return s.public
def parse(s): return Version(s)
''',
    "filelock.py": '''
class Timeout(Exception): pass
class FileLock:
    def __init__(self, *a, **k): pass
    def __enter__(self): return self
    def __exit__(self, *a): return False
    def acquire(self, *a, **k): return self
    def release(self, *a, **k): pass
BaseFileLock = SoftFileLock = UnixFileLock = FileLock
''',
    "filelock-3.12.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: filelock\nVersion: 3.12.0\n",
    "tqdm/__init__.py": '''
class tqdm:
    def __init__(self, iterable=None, *a, **k): self.iterable = iterable
    def __iter__(self): return iter(self.iterable or [])
    def __enter__(self): return self
    def __exit__(self, *a): return False
    def update(self, *a, **k): pass
    def close(self): pass
''',
    "tqdm/auto.py": "from . import tqdm\n",
    "tqdm/contrib/__init__.py": "",
    "tqdm/contrib/concurrent.py": "def thread_map(fn, *its, **k): return list(map(fn, *its))\n",
    "tqdm/contrib/logging.py": "from contextlib import contextmanager\n@contextmanager\ndef logging_redirect_tqdm(*a, **k):\n    yield\n",
    "safetensors/__init__.py": "class SafetensorError(Exception): pass\n",
    "safetensors/torch.py": "def load_file(*a, **k): raise NotImplementedError('not used')\n"
                            "save_file = load = save = load_file\n",
}


def read_st(path):
    """Minimal safetensors reader (the F32 tensors of a file)."""
    import torch
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    out = {}
    for k, v in json.loads(data[8:8 + n]).items():
        if k == "__metadata__":
            continue
        if v["dtype"] != "F32":
            continue
        b, e = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[8 + n + b:8 + n + e], np.float32).reshape(v["shape"]).copy())
    return out


def save(path, tensors):
    """Minimal safetensors writer (F32, header JSON padded to 8 bytes)."""
    hdr, blobs, off = {}, [], 0
    for name in sorted(tensors):
        raw = tensors[name].detach().contiguous().float().numpy().tobytes()
        hdr[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_vae(AutoencoderKL, d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    vae = AutoencoderKL(**cfg)
    missing, unexpected = vae.load_state_dict(read_st(os.path.join(d, "diffusion_pytorch_model.safetensors")), strict=True)
    assert not missing and not unexpected
    return vae.eval()


def hook_encoder(vae, out):
    """Forward hooks on every encoder module (like the reference set's
    activations): output as vae/encoder.<name>#k; the input too for the
    modules whose input is not another hooked module's output (the convs after
    the shared SiLU, the padded input of the downsampling convs, the attention
    projections)."""
    import torch
    counts = {}
    want_in = ("conv1", "conv2", "conv_out", "downsamplers.0.conv", "group_norm", "to_q", "to_out.0")

    def mk(name):
        def hook(mod, args, res):
            k = counts.get(name, 0)
            counts[name] = k + 1
            out[f"{name}#{k}"] = res.detach().clone()
            if name.endswith(want_in) and args and torch.is_tensor(args[0]):
                out[f"{name}#{k}.in"] = args[0].detach().clone()
        return hook

    hs = []
    for n, mod in vae.encoder.named_modules():
        if n.endswith("nonlinearity") or isinstance(mod, torch.nn.Dropout):
            continue  # diffusers' shared SiLU and identity dropouts, as in the reference set
        hs.append(mod.register_forward_hook(mk("vae/encoder" + ("." + n if n else ""))))
    hs.append(vae.quant_conv.register_forward_hook(mk("vae/quant_conv")))
    return hs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="folder holding diffusers/ (v0.30.3) and huggingface_hub/ (v0.23.5)")
    ap.add_argument("data", help="the repository's data/ folder")
    a = ap.parse_args()
    shim_dir = tempfile.mkdtemp(prefix="vae-fixture-shims-")
    for rel, text in SHIMS.items():
        p = os.path.join(shim_dir, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "w").write(text)
    sys.path[:0] = [shim_dir, a.src]
    import torch
    torch.set_num_threads(1)
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

    t = {}
    g = torch.Generator().manual_seed(5)
    small = load_vae(AutoencoderKL, os.path.join(a.data, "pipe_small", "vae"))
    ms = load_vae(AutoencoderKL, os.path.join(a.data, "pipe_ms", "vae"))
    with torch.no_grad():
        # sanity: the untiled decoder reproduces the reference case
        ref = read_st(os.path.join(a.data, "cases", "small_dpm2_cfg.safetensors"))
        dec = small.decode(ref["pipeline/latents_step01"] / small.config.scaling_factor).sample
        err = (dec - ref["pipeline/vae_decoded"]).abs().max().item()
        assert err < 1e-5, err

        small.enable_tiling()
        # pipe_small: tile_latent_min_size 8, overlap 6, blend_extent 4, row_limit 12:
        # 3 x 4 tiles, the last row 1 latent high and the last column 4 wide
        # (every mid-block attention has K*M*N >= 400: see the torch 1.13 caveat)
        z = torch.randn(1, 4, 13, 22, generator=g) * 5
        t["tiled_decode/small/z"] = z
        t["tiled_decode/small/out"] = small.decode(z).sample
        # batch of 2, 2 x 2 tiles (the second row 3 latents high)
        z = torch.randn(2, 4, 9, 10, generator=g) * 5
        t["tiled_decode/small_b2/z"] = z
        t["tiled_decode/small_b2/out"] = small.decode(z).sample
        # tiled_encode: tiles of 16 px every 12 px, blend 2, row_limit 6
        x = torch.rand(1, 3, 40, 45, generator=g) * 2 - 1
        t["tiled_encode/small/x"] = x
        t["tiled_encode/small/mean"] = small.encode(x).latent_dist.mean
        small.disable_tiling()

        # the encoder module by module (pipe_small), and its posterior mean
        x = torch.rand(1, 3, 8, 12, generator=g) * 2 - 1
        t["encode/small/x"] = x
        acts = {}
        hs = hook_encoder(small, acts)
        t["encode/small/mean"] = small.encode(x).latent_dist.mean
        for h in hs:
            h.remove()
        for k, v in acts.items():
            t[k] = v
        # pipe_ms: 4 blocks, 4 groups, layers_per_block 2, a batch of 2
        x = torch.rand(2, 3, 32, 48, generator=g) * 2 - 1
        t["encode/ms/x"] = x
        t["encode/ms/mean"] = ms.encode(x).latent_dist.mean
    for k, v in t.items():
        # torch 1.13's baddbmm(beta=0) may read uninitialised memory for tiny attentions
        assert torch.isfinite(v).all(), k
    os.makedirs(os.path.join(a.data, "vae"), exist_ok=True)
    save(os.path.join(a.data, "vae", "diffusers_vae.safetensors"), t)
    print(f"untiled decode vs reference case: max abs err {err:.3g}; {len(t)} tensors written")


if __name__ == "__main__":
    main()
