#!/usr/bin/python3
"""Generate data/core/*.safetensors: PyTorch's own results for the
foundation tests (half-precision conversion and the scalar reference ops).

Run with Debian's python3-torch (torch 1.13, float32, CPU, 1 thread):
    /usr/bin/python3 tools/gen_core_fixture.py data/core
Only needed to regenerate the fixtures; the build and tests never run Python.
"""
import json, math, struct, sys
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def save(path, tensors):
    """Minimal safetensors writer (header JSON padded to 8 bytes)."""
    kinds = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
    hdr, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype in (torch.float16, torch.bfloat16) \
            else t.numpy().tobytes()
        hdr[name] = {"dtype": kinds[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def half_fixture(out):
    g = torch.Generator().manual_seed(1)
    vals = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.0, 65520.0, 1e6, -1e6, 6.1e-5, 5.96e-8, 2.98e-8,
            2.9802322e-8, 3e-8, 1e-40, 3.4e38, float("inf"), float("-inf"), float("nan"),
            1.00390625, 1.01171875, 1.0078125, 1.0234375, 0.333333, 2049.0, 2051.0, 4097.0]
    x = torch.tensor(vals, dtype=torch.float32)
    # random values across many magnitudes, and exact bf16/f16 ties
    r = torch.randn(2000, generator=g) * torch.exp(torch.randn(2000, generator=g) * 6)
    ties_b = (torch.randint(-2**15, 2**15, (500,), generator=g, dtype=torch.int64) << 16) | 0x8000
    ties_b = torch.from_numpy(ties_b.numpy().astype(np.int32).view(np.float32).copy())
    ties_h = torch.from_numpy((np.arange(500, dtype=np.float32) + 0.5) * np.float32(2.0 ** -14))
    x = torch.cat([x, r, ties_b, ties_h])
    x = x[torch.isfinite(x) | torch.isinf(x)]  # keep infs, drop NaN payload variety from ties
    b = x.to(torch.bfloat16)
    h = x.to(torch.float16)
    save(f"{out}/half.safetensors", {"f32": x, "bf16": b, "f16": h,
                                     "bf16_as_f32": b.float(), "f16_as_f32": h.float()})


def ops_fixture(out):
    g = torch.Generator().manual_seed(2)
    t = {}
    x = torch.randn(3, 37, generator=g) * 3
    t["act/x"] = x
    t["act/gelu_tanh"] = F.gelu(x, approximate="tanh")
    t["act/gelu_erf"] = F.gelu(x)
    t["act/silu"] = F.silu(x)
    # T5's gelu_new written as transformers does
    t["act/gelu_new"] = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    sm = torch.randn(5, 29, generator=g) * 4
    t["softmax/x"] = sm
    t["softmax/y"] = torch.softmax(sm, dim=-1)
    ln = torch.randn(4, 33, generator=g) * 2 + 1
    w = torch.randn(33, generator=g)
    bb = torch.randn(33, generator=g)
    t["layernorm/x"], t["layernorm/w"], t["layernorm/b"] = ln, w, bb
    t["layernorm/y_affine"] = F.layer_norm(ln, (33,), w, bb, eps=1e-6)
    t["layernorm/y_plain"] = F.layer_norm(ln, (33,), None, None, eps=1e-6)
    var = ln.pow(2).mean(-1, keepdim=True)
    t["rmsnorm/y"] = w * (ln * torch.rsqrt(var + 1e-6))
    gx = torch.randn(2, 8, 5, 3, generator=g) * 2 + 0.5
    gw = torch.randn(8, generator=g)
    gb = torch.randn(8, generator=g)
    t["groupnorm/x"], t["groupnorm/w"], t["groupnorm/b"] = gx, gw, gb
    t["groupnorm/y"] = F.group_norm(gx, 4, gw, gb, eps=1e-6)
    cx = torch.randn(2, 3, 7, 6, generator=g)
    cw3 = torch.randn(5, 3, 3, 3, generator=g)
    cw1 = torch.randn(5, 3, 1, 1, generator=g)
    cw2 = torch.randn(5, 3, 2, 2, generator=g)
    cb = torch.randn(5, generator=g)
    t["conv/x"], t["conv/w3"], t["conv/w1"], t["conv/w2"], t["conv/b"] = cx, cw3, cw1, cw2, cb
    t["conv/y3"] = F.conv2d(cx, cw3, cb, stride=1, padding=1)
    t["conv/y1"] = F.conv2d(cx, cw1, cb)
    t["conv/y2"] = F.conv2d(cx[:, :, :6, :], cw2, cb, stride=2)
    t["upsample/y"] = F.interpolate(cx, scale_factor=2.0, mode="nearest")
    # attention as diffusers' AttnProcessor computes it on torch 1.13:
    # baddbmm(mask, q, k^T, beta=1, alpha=scale) -> softmax -> bmm(v)
    B, H, Nq, Nk, D = 2, 3, 19, 23, 8
    q = torch.randn(B, Nq, H * D, generator=g)
    k = torch.randn(B, Nk, H * D, generator=g)
    v = torch.randn(B, Nk, H * D, generator=g)
    keep = torch.ones(B, Nk)
    keep[1, 15:] = 0
    bias = (1 - keep) * -10000.0
    def heads(a):
        return a.reshape(B, -1, H, D).permute(0, 2, 1, 3).reshape(B * H, -1, D)
    mask = bias[:, None, :].repeat_interleave(H, dim=0).expand(B * H, Nq, Nk)
    scores = torch.baddbmm(mask.contiguous(), heads(q), heads(k).transpose(1, 2), beta=1, alpha=D ** -0.5)
    o = torch.bmm(scores.softmax(-1), heads(v)).reshape(B, H, Nq, D).permute(0, 2, 1, 3).reshape(B, Nq, H * D)
    t["attn/q"], t["attn/k"], t["attn/v"], t["attn/key_bias"], t["attn/out"] = q, k, v, bias, o
    save(f"{out}/ops_torch.safetensors", t)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "data/core"
    half_fixture(out)
    ops_fixture(out)
