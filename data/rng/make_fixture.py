#!/usr/bin/env python3
"""Trim ../shared/reference/rng (torch.randn reference, 82 entries) into the
small always-on fixture data/rng/: every entry with <= 1024 values is copied
whole; larger ones keep their first and last 256 values (KEY#head, KEY#tail)
plus an FNV-1a 64 hash of all their float32 bit patterns (little-endian), so
the test still checks every value bit for bit.

usage: python3 data/rng/make_fixture.py ../shared/reference/rng data/rng
Plain Python 3 + numpy; reads/writes safetensors without the safetensors package."""
import json, struct, sys
import numpy as np

def st_load(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == '__metadata__':
            continue
        s, e = v['data_offsets']
        dt = {'F32': np.float32, 'I64': np.int64}[v['dtype']]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype=dt).reshape(v['shape'])
    return out

def st_save(path, tensors):
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        dt = {np.dtype(np.float32): 'F32', np.dtype(np.int64): 'I64'}[a.dtype]
        raw = a.tobytes()
        header[k] = {'dtype': dt, 'shape': list(a.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header['__metadata__'] = {'format': 'pt'}
    hb = json.dumps(header, separators=(',', ':')).encode()
    hb += b' ' * ((8 - len(hb) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hb)) + hb + b''.join(blobs))

def fnv1a64(a):
    h = 0xcbf29ce484222325
    for byte in a.astype('<f4').tobytes():
        h = ((h ^ byte) * 0x100000001b3) & 0xffffffffffffffff
    return '%016x' % h

def main(src, dst):
    meta = json.load(open(src + '/randn.json'))
    ref = st_load(src + '/randn.safetensors')
    out, entries = {}, []
    for e in meta['entries']:
        k, a = e['key'], ref[e['key']].reshape(-1)
        ent = {x: e[x] for x in ('key', 'kind', 'shape', 'numel') if x in e}
        if 'seed' in e:
            ent['seed'] = e['seed']['u64']
        if 'seeds' in e:
            ent['seeds'] = [s['u64'] for s in e['seeds']]
        if 'call_index' in e:
            ent['call_index'] = e['call_index']
        if a.size <= 1024:
            out[k] = a
            ent['stored'] = 'all'
        else:
            out[k + '#head'] = a[:256]
            out[k + '#tail'] = a[-256:]
            ent['stored'] = 'head_tail'
            ent['fnv1a64'] = fnv1a64(a)
        entries.append(ent)
    st_save(dst + '/randn.safetensors', out)
    json.dump({'what': meta['what'], 'source': 'shared/reference/rng (trimmed by make_fixture.py)',
               'entries': entries}, open(dst + '/randn.json', 'w'), indent=1)

if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
