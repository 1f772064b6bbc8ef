#!/usr/bin/env python3
"""Trim the LCMScheduler / SASolverScheduler part of ../shared/reference into
the always-on fixtures of tests/test_sched.c:

* data/sched/lcm_sa.{json,safetensors}: every lcm_* / sa_* scheduler trace in
  the layout of traces.json (data/sched/make_fixture.py): config, seeds,
  set_timesteps and step arguments, per-step facts (`steps`), and the tensors
  timesteps, sigmas (SA), c_skip / c_out (LCM), prev_sample_NN and
  denoised_NN (LCM) as "NAME/KEY"; alphas_cumprod once per beta
  configuration. Dropped: the model outputs, initial sample and step noise --
  torch.randn from the trace's seeds, which the test regenerates (the noise
  from the ONE generator manual_seed(noise_seed) passed to every step, so a
  draw in the wrong place changes every later prev_sample) -- and SA's
  sample_corrected_NN / model_output_converted_NN (intermediates of
  prev_sample; the optional full check compares them).
* data/sched/cases/NAME.{json,safetensors}: the LCM and SA-Solver pipeline
  calls, for the scheduler replay from the stored transformer outputs: the
  case JSON without its tensor descriptions, and only the pipeline/ tensors
  the replay reads (timesteps, initial latents, transformer outputs, latents
  after every step, the noise / denoised / corrected / converted tensors of
  the scheduler). lcm4_binning_500x300 is left out (its 160x96 latents make
  it 3.4 MB even trimmed; the test replays it from the shared set).

usage: python3 data/sched/make_lcm_sa.py ../shared/reference data/sched
Plain Python 3 (no numpy): tensors are copied as raw bytes."""
import json, os, re, struct, sys

def st_load(path):
    """{key: (dtype, shape, raw bytes)} of a safetensors file."""
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: (v['dtype'], v['shape'], b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]])
            for k, v in h.items() if k != '__metadata__'}

def st_save(path, tensors):
    """The layout of data/rng/make_fixture.py's writer: keys sorted, header padded to 8."""
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        dt, shape, raw = tensors[k]
        header[k] = {'dtype': dt, 'shape': list(shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header['__metadata__'] = {'format': 'pt'}
    hb = json.dumps(header, separators=(',', ':')).encode()
    hb += b' ' * ((8 - len(hb) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hb)) + hb + b''.join(blobs))

BETA_KEYS = ('num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas',
             'rescale_betas_zero_snr')
TRACE_KEYS = r'(prev_sample|denoised)_\d+$'
CASE_KEYS = (r'pipeline/(timesteps|initial_latents|transformer_out_step\d+|latents_step\d+|'
             r'lcm_(noise|denoised)_step\d+|sasolver_(noise|corrected|model_output_converted)_step\d+)$')
CASES_LEFT_OUT = ('lcm4_binning_500x300',)

def traces(src, dst):
    index = json.load(open(os.path.join(src, 'sched', 'index.json')))
    out, tensors, seen_betas = [], {}, set()
    for ent in index:
        name = ent['name']
        if not name.startswith(('lcm_', 'sa_')):
            continue
        d = json.load(open(os.path.join(src, 'sched', name + '.json')))
        ref = st_load(os.path.join(src, 'sched', name + '.safetensors'))
        t = {k: v for k, v in d.items() if k not in ('tensors', 'tensor_desc')}
        sk = dict(t.get('step_kwargs', {}))
        g = sk.get('generator')
        if isinstance(g, str):
            sk['generator'] = [int(re.search(r'manual_seed\((\d+)\)', g).group(1))]
        t['step_kwargs'] = sk
        betas = json.dumps([d['config'].get(k) for k in BETA_KEYS])
        keep = ['timesteps', 'sigmas', 'c_skip', 'c_out']
        if betas not in seen_betas:
            seen_betas.add(betas)
            keep.append('alphas_cumprod')
        for k, a in ref.items():
            if k in keep or re.match(TRACE_KEYS, k):
                tensors[name + '/' + k] = a
        t['stored'] = sorted(k for k in ref if name + '/' + k in tensors)
        out.append(t)
    st_save(os.path.join(dst, 'lcm_sa.safetensors'), tensors)
    json.dump({'source': 'shared/reference/sched lcm_* and sa_* (trimmed by data/sched/make_lcm_sa.py)',
               'traces': out}, open(os.path.join(dst, 'lcm_sa.json'), 'w'), indent=1)

def cases(src, dst):
    os.makedirs(os.path.join(dst, 'cases'), exist_ok=True)
    index = json.load(open(os.path.join(src, 'cases', 'index.json')))
    names = []
    for ent in index:
        name = ent['name']
        if ent.get('group') not in ('lcm', 'sasolver') or name in CASES_LEFT_OUT:
            continue
        d = json.load(open(os.path.join(src, 'cases', name + '.json')))
        ref = st_load(os.path.join(src, 'cases', name + '.safetensors'))
        c = {k: v for k, v in d.items() if k != 'tensors'}
        st_save(os.path.join(dst, 'cases', name + '.safetensors'),
                {k: a for k, a in ref.items() if re.match(CASE_KEYS, k)})
        json.dump(c, open(os.path.join(dst, 'cases', name + '.json'), 'w'), indent=1)
        names.append({'name': name, 'group': ent['group'], 'purpose': ent.get('purpose', '')})
    json.dump(names, open(os.path.join(dst, 'cases', 'index.json'), 'w'), indent=1)

if __name__ == '__main__':
    traces(sys.argv[1], sys.argv[2])
    cases(sys.argv[1], sys.argv[2])
