import pytest
import torch

from models import ImageClassifier, build_model, count_parameters, loss_function, probabilities


def test_parameter_counts_match_the_seed():
    assert count_parameters(build_model("model_2")) == 1_454_081
    # the seed's FakeNet with its head fixed to 256 -> 128 (the published file crashed on shapes)
    assert count_parameters(build_model("model")) == 1_295_073


def test_fullres_family_differs_only_in_width():
    # fullres_cnn at widths 16-128, the wide one at 1.5x, the x2/x4/x8 ones at 2/4/8 times: same layers, more channels
    names = ("fullres_cnn", "fullres_cnn_wide", "fullres_cnn_x2", "fullres_cnn_x4", "fullres_cnn_x8")
    nets = {name: build_model(name) for name in names}
    assert [count_parameters(n) for n in nets.values()] == [146_417, 328_489, 583_137, 2_327_489, 9_299_841]
    shapes = {name: [tuple(p.shape[2:]) for p in n.parameters() if p.ndim == 4] for name, n in nets.items()}
    assert all(s == [(3, 3)] * 7 for s in shapes.values())
    for name, factor in (("fullres_cnn_x2", 2), ("fullres_cnn_x4", 4), ("fullres_cnn_x8", 8)):
        assert nets[name].features[0][0].out_channels == factor * nets["fullres_cnn"].features[0][0].out_channels


def test_pool_first_normalises_after_pooling_with_the_same_weights():
    # fullres_cnn_x2_pool_first: the same parameters as x2, but each stage's last BatchNorm (and ReLU) runs on
    # the max-pooled map: a quarter of the positions, which is what makes it faster on a CPU
    def normalised_sizes(name):
        net, sizes = build_model(name).eval(), []
        hooks = [m.register_forward_hook(lambda m, inp, out: sizes.append(inp[0].shape[-1]))
                 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        net(torch.zeros(1, 3, 32, 32))
        for h in hooks:
            h.remove()
        return sizes
    assert count_parameters(build_model("fullres_cnn_x2_pool_first")) == count_parameters(build_model("fullres_cnn_x2"))
    assert count_parameters(build_model("fullres_cnn_x8_pool_first")) == count_parameters(build_model("fullres_cnn_x8"))
    assert normalised_sizes("fullres_cnn_x2") == [32, 32, 16, 16, 8, 8, 4]
    assert normalised_sizes("fullres_cnn_x2_pool_first") == [32, 16, 16, 8, 8, 4, 4]


def test_resnet18_is_the_cifar_resnet18():
    # the CIFAR ResNet-18 (3x3 stem, no max-pool, 2-2-2-2 basic blocks, widths 64-512) has 11,173,962
    # parameters with a 10-class head; ours has one logit: 11,173,962 - 9 * 513
    net = build_model("resnet18")
    assert count_parameters(net) == 11_173_962 - 9 * 513
    projections = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)]
    assert [(m.in_channels, m.out_channels, m.stride) for m in projections] == [
        (64, 128, (2, 2)), (128, 256, (2, 2)), (256, 512, (2, 2))]  # skips project only where the shape changes
    sizes = []
    net.features.register_forward_hook(lambda m, inp, out: sizes.append(tuple(out.shape[1:])))
    net.eval()(torch.zeros(1, 3, 32, 32))
    assert sizes == [(512, 4, 4)]


@pytest.mark.parametrize("name", ["model_2", "model", "fullres_cnn_x2", "fullres_cnn_x2_pool_first", "resnet18"])
@pytest.mark.parametrize("num_classes,outputs", [(2, 1), (3, 3)])
def test_forward_shapes(name, num_classes, outputs):
    net = build_model(name, num_classes).eval()
    assert net(torch.rand(4, 3, 32, 32)).shape == (4, outputs)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match="model_2"):
        build_model("resnet999")


def test_probabilities_binary_column_is_the_positive_class():
    p = probabilities(torch.tensor([[0.0], [10.0], [-10.0]]))
    assert torch.allclose(p.sum(1), torch.ones(3))
    assert p[0, 1] == pytest.approx(0.5) and p[1, 1] > 0.99 and p[2, 1] < 0.01


def test_probabilities_multiclass_softmax():
    p = probabilities(torch.tensor([[1.0, 2.0, 3.0]]))
    assert torch.allclose(p.sum(1), torch.ones(1)) and p.argmax() == 2


def test_classifier_normalises_uint8_and_float_inputs_alike():
    torch.manual_seed(0)
    model = ImageClassifier(build_model("model_2"), [0.5, 0.4, 0.3], [0.2, 0.2, 0.2]).eval()
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(model(x), model(x.float() / 255), atol=1e-5)


def test_loss_matches_bce_and_cross_entropy():
    logits = torch.tensor([[2.0], [-1.0]])
    y = torch.tensor([1, 0])
    expected = torch.nn.functional.binary_cross_entropy(torch.sigmoid(logits.squeeze(1)), y.float())
    assert loss_function(2)(logits, y) == pytest.approx(float(expected), rel=1e-5)
    logits3 = torch.tensor([[2.0, 0.0, -1.0]])
    assert loss_function(3)(logits3, torch.tensor([0])) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits3, torch.tensor([0]))))


def test_scores_do_not_depend_on_the_evaluation_batch_size():
    """run_model's CPU default (64 a pass, chosen for speed) must give the very scores of any other batching:
    eval mode, so BatchNorm uses its running statistics, never the batch's."""
    from utils.inference.scoring import eval_batch_size, run_model
    torch.manual_seed(0)
    model = ImageClassifier(build_model("model_2"), [0.5] * 3, [0.25] * 3)
    x = torch.randint(0, 256, (150, 3, 32, 32), dtype=torch.uint8)
    model.train()
    model(x)  # running statistics away from their initial values
    assert eval_batch_size("cpu") < 150 < eval_batch_size("cuda")
    by_default = run_model(model, x)
    assert not model.training and by_default.shape == (150, 1)
    assert torch.allclose(by_default, run_model(model, x, batch_size=150), atol=1e-5)
    assert torch.allclose(by_default, run_model(model, x, batch_size=7), atol=1e-5)
