#!/usr/bin/env python3
"""Extra scheduler traces for what the reference set does not cover
(v_prediction / sample prediction, thresholding, scaled_linear / squaredcos /
trained betas, zero-terminal-SNR rescaling, sde-dpmsolver(++) noise, learned
variance, euler_at_final, lambda_min_clipped, numpy's trailing-spacing
rounding quirk, Karras sigmas with each spacing, generator lists, ...), in
the format of traces.json / traces.safetensors (see make_fixture.py).

They are made by the real diffusers v0.30.3 scheduler modules
(scheduling_ddim.py, scheduling_dpmsolver_multistep.py,
scheduling_sasolver.py from a `git archive` export of tag v0.30.3) on
Debian's python3-torch 1.13.1 (CPU). diffusers' package __init__ needs
huggingface_hub & co., so only the scheduler
modules are imported, next to minimal stand-ins for what they import:
ConfigMixin/register_to_config (records the __init__ arguments as
self.config), BaseOutput, deprecate (no-op), SchedulerMixin, SchedulerOutput
and randn_tensor (diffusers' CPU branch: one torch.randn per generator of a
list). The same setup reproduces the 28 reference traces bit for bit.

usage: python3 data/sched/gen_extra.py DIFFUSERS_SRC_DIR data/sched
   (DIFFUSERS_SRC_DIR = the src/diffusers directory of a v0.30.3 checkout)
e.g. with the reference environment of ../shared/tools/refenv/setup.sh:
   REFENV=/tmp/refenv bash ../shared/tools/refenv/setup.sh && . /tmp/refenv/env.sh
   /usr/bin/python3 data/sched/gen_extra.py /tmp/refenv/src/diffusers/src/diffusers data/sched
New cases go at the end of CASES: a case's seeds follow from its position,
so the earlier traces stay byte-identical (checked when the last four were
added: all 747 earlier tensors unchanged)."""
import json, os, shutil, sys, tempfile
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'rng'))
from make_fixture import st_save  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

STUBS = {
    '__init__.py': '',
    'schedulers/__init__.py': '',
    'configuration_utils.py': '''
import functools, inspect, types
class ConfigMixin:
    def register_to_config(self, **kw):
        d = dict(getattr(self, "_cfg", {})); d.update(kw); self._cfg = d
        self.config = types.SimpleNamespace(**d)
def register_to_config(init):
    @functools.wraps(init)
    def inner(self, *args, **kwargs):
        b = inspect.signature(init).bind(self, *args, **kwargs); b.apply_defaults()
        d = dict(b.arguments); d.pop("self")
        ConfigMixin.register_to_config(self, **d)
        init(self, *args, **kwargs)
    return inner
''',
    'utils/__init__.py': '''
class BaseOutput:
    pass
def deprecate(*args, **kwargs):
    pass
''',
    'utils/torch_utils.py': '''
import torch
def randn_tensor(shape, generator=None, device=None, dtype=None, layout=None):
    if isinstance(generator, list) and len(generator) == 1:
        generator = generator[0]
    if isinstance(generator, list):
        shape = (1,) + tuple(shape[1:])
        return torch.cat([torch.randn(shape, generator=generator[i], dtype=dtype) for i in range(len(generator))], 0)
    return torch.randn(shape, generator=generator, dtype=dtype)
''',
    'schedulers/scheduling_utils.py': '''
import enum, torch
from dataclasses import dataclass
class KarrasDiffusionSchedulers(enum.Enum):
    DDIMScheduler = 1
class SchedulerMixin:
    pass
@dataclass
class SchedulerOutput:
    prev_sample: torch.Tensor
''',
}

def import_schedulers(src):
    root = tempfile.mkdtemp()
    pkg = os.path.join(root, 'diffusers')
    for rel, text in STUBS.items():
        os.makedirs(os.path.dirname(os.path.join(pkg, rel)), exist_ok=True)
        open(os.path.join(pkg, rel), 'w').write(text)
    for f in ('scheduling_ddim.py', 'scheduling_dpmsolver_multistep.py', 'scheduling_sasolver.py'):
        shutil.copy(os.path.join(src, 'schedulers', f), os.path.join(pkg, 'schedulers', f))
    # DDIMSchedulerOutput derives from BaseOutput (an OrderedDict dataclass upstream)
    p = os.path.join(pkg, 'schedulers', 'scheduling_ddim.py')
    text = open(p).read().replace('class DDIMSchedulerOutput(BaseOutput):', 'class DDIMSchedulerOutput:')
    open(p, 'w').write(text)
    sys.path.insert(0, root)
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler
    from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler
    from diffusers.schedulers.scheduling_sasolver import SASolverScheduler
    return {'DDIMScheduler': DDIMScheduler, 'DPMSolverMultistepScheduler': DPMSolverMultistepScheduler,
            'SASolverScheduler': SASolverScheduler}

TRAINED = [round(0.0002 + 0.03 * (i / 49) ** 1.5, 8) for i in range(50)]

# name, class, constructor kwargs, set_timesteps kwargs, step kwargs (generator: seeds), shape, model output shape
CASES = [
    ('ddim_vpred_zsnr_trailing_s7', 'DDIMScheduler',
     dict(prediction_type='v_prediction', timestep_spacing='trailing', rescale_betas_zero_snr=True, clip_sample=False),
     dict(num_inference_steps=7), dict(eta=0.0), [1, 4, 4, 4], None),
    ('ddim_samplepred_scaled_eta03_genlist_s6', 'DDIMScheduler',
     dict(prediction_type='sample', beta_schedule='scaled_linear', beta_start=0.00085, beta_end=0.012),
     dict(num_inference_steps=6), dict(eta=0.3, generator=[71, 72]), [2, 4, 4, 4], None),
    ('ddim_thresh_cos_offset_s8', 'DDIMScheduler',
     dict(beta_schedule='squaredcos_cap_v2', thresholding=True, dynamic_thresholding_ratio=0.9,
          sample_max_value=1.5, set_alpha_to_one=False, steps_offset=1),
     dict(num_inference_steps=8), dict(eta=0.0), [2, 4, 4, 4], None),
    ('ddim_clipped_eps_eta07_s5', 'DDIMScheduler',
     dict(clip_sample_range=0.8, timestep_spacing='linspace'),
     dict(num_inference_steps=5), dict(eta=0.7, generator=[5], use_clipped_model_output=True), [1, 4, 4, 4], None),
    ('ddim_trailing_s61', 'DDIMScheduler', dict(timestep_spacing='trailing'),
     dict(num_inference_steps=61), dict(eta=0.0), [1, 4, 2, 2], None),
    ('ddim_trained_linspace_eta1_s4', 'DDIMScheduler',
     dict(trained_betas=TRAINED, num_train_timesteps=50, timestep_spacing='linspace', clip_sample=False),
     dict(num_inference_steps=4), dict(eta=1.0, generator=[9]), [1, 4, 4, 4], None),
    ('ddim_linspace_s1', 'DDIMScheduler', dict(timestep_spacing='linspace'),
     dict(num_inference_steps=1), dict(eta=0.0), [1, 4, 4, 4], None),
    ('dpm_vpred_scaled_trailing_s6', 'DPMSolverMultistepScheduler',
     dict(prediction_type='v_prediction', beta_schedule='scaled_linear', beta_start=0.00085, beta_end=0.012,
          timestep_spacing='trailing'),
     dict(num_inference_steps=6), dict(), [1, 4, 4, 4], None),
    ('dpm_samplepred_thresh_o3_heun_s7', 'DPMSolverMultistepScheduler',
     dict(prediction_type='sample', thresholding=True, sample_max_value=1.2, solver_order=3, solver_type='heun'),
     dict(num_inference_steps=7), dict(), [2, 4, 4, 4], None),
    ('dpm_sdepp_genlist_s6', 'DPMSolverMultistepScheduler', dict(algorithm_type='sde-dpmsolver++'),
     dict(num_inference_steps=6), dict(generator=[11, 12]), [2, 4, 4, 4], None),
    ('dpm_sdepp_heun_s5', 'DPMSolverMultistepScheduler', dict(algorithm_type='sde-dpmsolver++', solver_type='heun'),
     dict(num_inference_steps=5), dict(generator=[13]), [1, 4, 4, 4], None),
    ('dpm_sde_sigmamin_s5', 'DPMSolverMultistepScheduler',
     dict(algorithm_type='sde-dpmsolver', final_sigmas_type='sigma_min'),
     dict(num_inference_steps=5), dict(generator=[14]), [1, 4, 4, 4], None),
    ('dpm_sde_heun_sigmamin_s6', 'DPMSolverMultistepScheduler',
     dict(algorithm_type='sde-dpmsolver', solver_type='heun', final_sigmas_type='sigma_min'),
     dict(num_inference_steps=6), dict(generator=[15]), [1, 4, 4, 4], None),
    ('dpm_dpmsolver_vpred_thresh_o3_s8', 'DPMSolverMultistepScheduler',
     dict(algorithm_type='dpmsolver', final_sigmas_type='sigma_min', prediction_type='v_prediction',
          thresholding=True, solver_order=3),
     dict(num_inference_steps=8), dict(), [1, 4, 4, 4], None),
    ('dpm_dpmsolver_samplepred_s4', 'DPMSolverMultistepScheduler',
     dict(algorithm_type='dpmsolver', final_sigmas_type='sigma_min', prediction_type='sample'),
     dict(num_inference_steps=4), dict(), [1, 4, 4, 4], None),
    ('dpm_learned_s4', 'DPMSolverMultistepScheduler', dict(variance_type='learned_range'),
     dict(num_inference_steps=4), dict(), [1, 3, 4, 4], [1, 6, 4, 4]),
    ('dpm_euler_final_o3_sigmamin_s20', 'DPMSolverMultistepScheduler',
     dict(euler_at_final=True, lower_order_final=False, final_sigmas_type='sigma_min', solver_order=3),
     dict(num_inference_steps=20), dict(), [1, 4, 2, 2], None),
    ('dpm_cos_lambdaclip_s10', 'DPMSolverMultistepScheduler',
     dict(beta_schedule='squaredcos_cap_v2', lambda_min_clipped=-5.1),
     dict(num_inference_steps=10), dict(), [1, 4, 4, 4], None),
    ('dpm_cos_lambdaclip_leading_s6', 'DPMSolverMultistepScheduler',
     dict(beta_schedule='squaredcos_cap_v2', lambda_min_clipped=-5.1, timestep_spacing='leading', steps_offset=1),
     dict(num_inference_steps=6), dict(), [1, 4, 4, 4], None),
    ('dpm_karras_scaled_s120', 'DPMSolverMultistepScheduler',
     dict(use_karras_sigmas=True, beta_schedule='scaled_linear', beta_start=0.00085, beta_end=0.012),
     dict(num_inference_steps=120), dict(), [1, 1, 2, 2], None),
    ('dpm_trailing_s61', 'DPMSolverMultistepScheduler', dict(timestep_spacing='trailing'),
     dict(num_inference_steps=61), dict(), [1, 4, 2, 2], None),
    ('dpm_zsnr_vpred_trailing_o3_s8', 'DPMSolverMultistepScheduler',
     dict(rescale_betas_zero_snr=True, prediction_type='v_prediction', timestep_spacing='trailing', solver_order=3),
     dict(num_inference_steps=8), dict(), [1, 4, 4, 4], None),
    ('dpm_trained_custom_ts', 'DPMSolverMultistepScheduler',
     dict(trained_betas=TRAINED, num_train_timesteps=50, solver_order=3),
     dict(timesteps=[49, 45, 37, 30, 22, 12, 3]), dict(), [1, 4, 4, 4], None),
    ('dpm_default_s200', 'DPMSolverMultistepScheduler', dict(),
     dict(num_inference_steps=200), dict(), [1, 1, 2, 2], None),
    # Karras sigmas: _convert_to_karras(.., num_inference_steps) gives n sigmas
    # and n timesteps, also where 'trailing' spacing has n + 1 (61 of 1000)
    ('dpm_karras_trailing_s61', 'DPMSolverMultistepScheduler',
     dict(use_karras_sigmas=True, timestep_spacing='trailing'),
     dict(num_inference_steps=61), dict(), [1, 4, 2, 2], None),
    ('dpm_karras_leading_offset_sigmamin_s9', 'DPMSolverMultistepScheduler',
     dict(use_karras_sigmas=True, timestep_spacing='leading', steps_offset=1, final_sigmas_type='sigma_min'),
     dict(num_inference_steps=9), dict(), [1, 4, 4, 4], None),
    ('dpm_cos_lambdaclip_trailing_s9', 'DPMSolverMultistepScheduler',
     dict(beta_schedule='squaredcos_cap_v2', lambda_min_clipped=-5.1, timestep_spacing='trailing'),
     dict(num_inference_steps=9), dict(), [1, 4, 4, 4], None),
    ('sa_karras_trailing_s61', 'SASolverScheduler', dict(use_karras_sigmas=True, timestep_spacing='trailing'),
     dict(num_inference_steps=61), dict(generator=[21]), [1, 4, 2, 2], None),
]

BETA_KEYS = ('num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas',
             'rescale_betas_zero_snr')

def main(src, dst):
    classes = import_schedulers(src)
    traces, tensors, seen = [], {}, set()
    for i, (name, cls, kw, st, sk, shape, mo_shape) in enumerate(CASES):
        sched = classes[cls](**kw)
        sched.set_timesteps(**st)
        config = {'_class_name': cls}
        config.update(vars(sched.config))
        sample_seed, mo_base = 7000 + 10 * i, 8000 + 100 * i
        gens = None
        if sk.get('generator'):
            gens = [torch.Generator('cpu').manual_seed(s) for s in sk['generator']]
            if len(gens) == 1:
                gens = gens[0]
        step_kwargs = {k: v for k, v in sk.items() if k != 'generator'}
        x = torch.randn(shape, generator=torch.Generator('cpu').manual_seed(sample_seed))
        out = {'timesteps': sched.timesteps.numpy().astype(np.int64)}
        if cls != 'DDIMScheduler':
            out['sigmas'] = sched.sigmas.numpy()
        betas = json.dumps([config.get(k) for k in BETA_KEYS])
        if betas not in seen:
            seen.add(betas)
            out['alphas_cumprod'] = sched.alphas_cumprod.numpy()
        for j, t in enumerate(sched.timesteps):
            mo = torch.randn(mo_shape or shape, generator=torch.Generator('cpu').manual_seed(mo_base + j))
            if cls == 'DDIMScheduler' and step_kwargs.get('eta', 0) > 0:
                g_state = [g.get_state() for g in gens] if isinstance(gens, list) else gens.get_state()
                r = sched.step(mo, t, x, generator=gens, **step_kwargs)
                # the noise the step drew: replay the generator(s)
                if isinstance(gens, list):
                    probe = [torch.Generator('cpu') for _ in gens]
                    for p, s in zip(probe, g_state):
                        p.set_state(s)
                    noise = torch.cat([torch.randn([1] + shape[1:], generator=p) for p in probe], 0)
                else:
                    probe = torch.Generator('cpu')
                    probe.set_state(g_state)
                    noise = torch.randn(shape, generator=probe)
                out['variance_noise_%02d' % j] = noise.numpy()
            elif cls == 'DDIMScheduler':
                r = sched.step(mo, t, x, **step_kwargs)
            else:
                r = sched.step(mo, t, x, generator=gens)
            x = r.prev_sample
            out['prev_sample_%02d' % j] = x.numpy()
            if cls == 'DDIMScheduler':
                out['pred_original_sample_%02d' % j] = r.pred_original_sample.numpy()
        for k, a in out.items():
            tensors[name + '/' + k] = a
        sk_json = dict(step_kwargs)
        if sk.get('generator'):
            sk_json['generator'] = sk['generator']
        traces.append({'name': name, 'class': cls, 'constructor_kwargs': kw, 'config': config,
                       'set_timesteps': st, 'step_kwargs': sk_json, 'sample_seed': sample_seed,
                       'model_output_seed_base': mo_base, 'shape': shape,
                       'model_output_shape': mo_shape or shape,
                       'timesteps': [int(t) for t in sched.timesteps], 'stored': sorted(out)})
    # _threshold_sample alone (torch.quantile + clamp), 8 settings x batch 32;
    # mostly a large sample_max_value so that the quantile itself shows. The
    # seed is searched so that each setting has rows where an unfused lerp
    # (a + w*(b - a)) would round differently from torch's.
    def unfused_differs(x, ratio):
        a = np.sort(np.abs(x.reshape(x.shape[0], -1).numpy()), axis=1)
        rank = np.float32(ratio) * np.float32(a.shape[1] - 1)
        lo, hi = int(rank), int(np.ceil(rank))
        w = np.float32(rank - np.float32(lo))
        q = torch.quantile(torch.from_numpy(a), ratio, dim=1).numpy()
        d = (a[:, hi] - a[:, lo]).astype(np.float32)
        plain = (a[:, lo] + w * d) if abs(w) < 0.5 else (a[:, hi] - d * (np.float32(1) - w))
        return int((plain.astype(np.float32) != q).sum())
    thr = []
    for k in range(8):
        # ratios whose rank weight w = ratio * 15 - floor(.) is not a short dyadic
        ratio = [0.995, 0.93, 0.61, 0.77, 0.999, 0.53, 0.87, 0.97][k]
        smv = [100.0, 1.5, 100.0, 100.0, 3.0, 100.0, 100.0, 2.2][k]
        sched = classes['DDIMScheduler'](thresholding=True, dynamic_thresholding_ratio=ratio, sample_max_value=smv)
        seed = 9000 + 1000 * k
        for _ in range(1000):
            x = torch.randn([32, 4, 2, 2], generator=torch.Generator('cpu').manual_seed(seed)) * (2 + k % 3)
            if smv < 10 or unfused_differs(x, ratio) >= 2:
                break
            seed += 1
        else:
            raise SystemExit('no threshold data found for setting %d' % k)
        tensors['threshold/%d/in' % k] = x.numpy()
        tensors['threshold/%d/out' % k] = sched._threshold_sample(x).numpy()
        thr.append({'key': 'threshold/%d' % k, 'dynamic_thresholding_ratio': ratio, 'sample_max_value': smv,
                    'shape': [32, 4, 2, 2], 'seed': seed})
    st_save(os.path.join(dst, 'extra.safetensors'), tensors)
    json.dump({'source': 'data/sched/gen_extra.py: diffusers v0.30.3 scheduler modules, torch %s' % torch.__version__,
               'traces': traces, 'threshold': thr}, open(os.path.join(dst, 'extra.json'), 'w'), indent=1)

if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
