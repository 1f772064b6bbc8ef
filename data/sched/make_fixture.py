#!/usr/bin/env python3
"""Trim ../shared/reference/sched (28 diffusers scheduler traces) into the
always-on fixture data/sched/traces.{json,safetensors}.

Kept per trace: its JSON minus the per-step/tensor descriptions (class,
constructor kwargs, full config, set_timesteps and step arguments, seeds,
shape, timesteps), and the tensors timesteps, sigmas (DPM), prev_sample_NN,
pred_original_sample_NN and variance_noise_NN (DDIM), stored as "NAME/KEY".
alphas_cumprod is kept once per distinct beta configuration. Dropped:
sample_initial and model_output_NN -- they are torch.randn(shape,
manual_seed(seed)) and the test regenerates them (tests/test_rng.c checks that
generator bit for bit); the optional full check reads the reference itself.
The step generator "torch.Generator('cpu').manual_seed(S)" becomes [S].

usage: python3 data/sched/make_fixture.py ../shared/reference/sched data/sched"""
import json, os, re, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'rng'))
from make_fixture import st_load, st_save  # noqa: E402  (data/rng/make_fixture.py)

BETA_KEYS = ('num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas',
             'rescale_betas_zero_snr')

def main(src, dst):
    index = json.load(open(os.path.join(src, 'index.json')))
    traces, tensors, seen_betas = [], {}, set()
    for ent in index:
        name = ent['name']
        d = json.load(open(os.path.join(src, name + '.json')))
        ref = st_load(os.path.join(src, name + '.safetensors'))
        t = {k: v for k, v in d.items() if k not in ('steps', 'tensors', 'tensor_desc')}
        sk = dict(t.get('step_kwargs', {}))
        g = sk.get('generator')
        if isinstance(g, str):
            sk['generator'] = [int(re.search(r'manual_seed\((\d+)\)', g).group(1))]
        t['step_kwargs'] = sk
        betas = json.dumps([d['config'].get(k) for k in BETA_KEYS])
        keep = ['timesteps', 'sigmas']
        if betas not in seen_betas:
            seen_betas.add(betas)
            keep.append('alphas_cumprod')
        for k, a in ref.items():
            if k in keep or re.match(r'(prev_sample|pred_original_sample|variance_noise)_\d+$', k):
                tensors[name + '/' + k] = a
        t['stored'] = sorted(k for k in ref if name + '/' + k in tensors)
        traces.append(t)
    st_save(os.path.join(dst, 'traces.safetensors'), tensors)
    json.dump({'source': 'shared/reference/sched (trimmed by data/sched/make_fixture.py)',
               'traces': traces}, open(os.path.join(dst, 'traces.json'), 'w'), indent=1)

if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
