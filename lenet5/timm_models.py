"""LeNet-5 registered with timm, so timm users get it like any other timm model.

    import lenet5, timm
    model = timm.create_model("lenet5", pretrained=True)             # the bundled weights, offline
    model = timm.create_model("lenet5_lecun1998", pretrained=True)   # the paper's network, bundled
    model = timm.create_model("hf-hub:OWNER/NAME", pretrained=True)  # weights pushed by train.py --push
"""

from functools import partial

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from .hub import BUNDLED_DIR
from .model import FEATURE_INFO, TIMM_ARCHITECTURES, LeNet5, pretrained_cfg

default_cfgs = generate_default_cfgs(
    {
        f"{arch}.mnist": {**pretrained_cfg(), "file": str(BUNDLED_DIR / variant / "model.safetensors")}
        for variant, arch in TIMM_ARCHITECTURES.items()
    }
)


def _create(variant: str, pretrained: bool, **kwargs) -> LeNet5:
    # features_only=True takes the C1, C3 and C5 stages from forward_intermediates
    feature_cfg = {"out_indices": tuple(range(len(FEATURE_INFO))), "feature_cls": "getter"}
    return build_model_with_cfg(partial(LeNet5, variant=variant), TIMM_ARCHITECTURES[variant], pretrained,
                                feature_cfg=feature_cfg, **kwargs)


@register_model
def lenet5(pretrained: bool = False, **kwargs) -> LeNet5:
    """The modern LeNet-5 (ReLU, max-pool), the tutorials' network, for 28x28 digits."""
    return _create("modern", pretrained, **kwargs)


@register_model
def lenet5_lecun1998(pretrained: bool = False, **kwargs) -> LeNet5:
    """The paper's LeNet-5 (LeCun et al., 1998): tanh squashing, subsampling, Table I, RBF outputs."""
    return _create("lecun1998", pretrained, **kwargs)
