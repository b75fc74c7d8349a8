#!/usr/bin/env python3
"""PyTorch peer of normexp's training-step benchmark.

Builds the same CIFAR models as normexp (lib/models/{wrn,resnet,cnn9}.cpp with the bn scheme of
lib/nn/schemes/bn.cpp) and times the same step as normexp's fast path (lib/train/trainer.cpp,
step.cpp, pipeline.cpp, data/augment.cpp, optim/sgd.cpp): a uint8 dataset resident on the device, a
per-epoch permutation, batched crop + flip on uint8, affine normalization, bf16 autocast, fp32
cross-entropy, in-place zero_grad, SGD with momentum, per-step cosine LR and on-device
loss/accuracy sums. The JSON it writes has the keys of normexp's train_step benchmark, so the
two can be put side by side. See bench/peer/README.md.
"""
import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# Only the cost matters here (normexp uses the training set's statistics): CIFAR-10's.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
PAD = 4  # crop padding of data.augment=standard
GRAPH_EAGER_STEPS = 3  # --mode graphs: eager steps before the capture


# ---------------------------------------------------------------- models (bn scheme) -------
def conv(cin, cout, k, stride, pad):
    # bn scheme: no bias, Kaiming-normal fan_out/ReLU init (nn/schemes/bn.cpp).
    c = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False)
    nn.init.kaiming_normal_(c.weight, mode="fan_out", nonlinearity="relu")
    return c


def norm(ch, args):
    return nn.BatchNorm2d(ch, eps=args.bn_eps, momentum=args.bn_momentum)


class WideBlock(nn.Module):
    # Pre-activation block; the projection (when the shape changes) sees the pre-activated input.
    def __init__(self, cin, cout, stride, args):
        super().__init__()
        self.bn1 = norm(cin, args)
        self.conv1 = conv(cin, cout, 3, stride, 1)
        self.bn2 = norm(cout, args)
        self.conv2 = conv(cout, cout, 3, 1, 1)
        self.shortcut = conv(cin, cout, 1, stride, 0) if cin != cout or stride != 1 else None

    def forward(self, x):
        pre = F.relu(self.bn1(x))  # out of place: x is the identity shortcut
        out = self.conv2(F.relu_(self.bn2(self.conv1(pre))))  # dropout 0 (normexp default)
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    def __init__(self, depth, width, classes, args):
        super().__init__()
        if (depth - 4) % 6:
            sys.exit(f"wrn depth {depth} is not 6n + 4")
        n = (depth - 4) // 6
        self.conv1 = conv(3, 16, 3, 1, 1)
        cin = 16
        for s, stride in enumerate((1, 2, 2)):
            cout = (16 << s) * width
            blocks = []
            for b in range(n):
                blocks.append(WideBlock(cin, cout, stride if b == 0 else 1, args))
                cin = cout
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.bn = norm(cin, args)
        self.classifier = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.classifier(F.relu_(self.bn(x)).mean((2, 3)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, shortcut, args):
        super().__init__()
        self.stride, self.extra = stride, cout - cin
        self.conv1 = conv(cin, cout, 3, stride, 1)
        self.bn1 = norm(cout, args)
        self.conv2 = conv(cout, cout, 3, 1, 1)
        self.bn2 = norm(cout, args)
        self.shortcut = None
        if shortcut == "B" and (stride != 1 or cin != cout):
            self.shortcut = nn.Sequential(conv(cin, cout, 1, stride, 0), norm(cout, args))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu_(self.bn1(self.conv1(x)))))
        if self.shortcut is not None:
            y = self.shortcut(x)
        else:  # option A: strided subsample, zero channels appended last, no parameters
            y = x[:, :, :: self.stride, :: self.stride] if self.stride != 1 else x
            if self.extra > 0:
                y = F.pad(y, (0, 0, 0, 0, 0, self.extra))
        return F.relu_(out + y)


class CifarResNet(nn.Module):
    def __init__(self, depth, classes, shortcut, args):
        super().__init__()
        if (depth - 2) % 6:
            sys.exit(f"resnet depth {depth} is not 6n + 2")
        n = (depth - 2) // 6
        self.conv1 = conv(3, 16, 3, 1, 1)
        self.bn1 = norm(16, args)
        cin = 16
        for s, cout in enumerate((16, 32, 64)):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if s > 0 and b == 0 else 1, shortcut, args))
                cin = cout
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.classifier = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu_(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.classifier(x.mean((2, 3)))


class Cnn9(nn.Module):
    def __init__(self, width, classes, args):
        super().__init__()
        layers, cin = [], 3
        for s, base in enumerate((64, 128, 256)):
            w = int(math.floor(base * width + 0.5))  # std::lround, not banker's rounding
            if s > 0:
                layers.append(nn.AvgPool2d(2))
            for _ in range(3):
                layers += [conv(cin, w, 3, 1, 1), norm(w, args), nn.ReLU(inplace=True)]
                cin = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def build_model(args):
    if args.model == "wrn":
        return WideResNet(args.depth, int(args.width), args.classes, args)
    if args.model == "resnet":
        return CifarResNet(args.depth, args.classes, args.shortcut, args)
    return Cnn9(args.width, args.classes, args)


# ---------------------------------------------------------------- input pipeline -----------
def random_crop_flip(x):
    """Crop with zero padding + horizontal flip, on uint8, as two gathers like data/augment.cpp."""
    n, c, h, w = x.shape
    xp = F.pad(x, (PAD, PAD, PAD, PAD))
    dy = torch.randint(0, 2 * PAD + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * PAD + 1, (n,), device=x.device)
    return flip(crop(xp, h, w, dy, dx))


def crop(xp, h, w, dy, dx):
    n, c = xp.shape[:2]
    rows = dy.view(n, 1) + torch.arange(h, device=xp.device).view(1, h)
    cols = dx.view(n, 1) + torch.arange(w, device=xp.device).view(1, w)
    y = xp.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, xp.shape[3]))
    return y.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def flip(x):
    f = torch.rand((x.shape[0], 1, 1, 1), device=x.device) < 0.5
    return torch.where(f, x.flip(3), x)


class Trainer:
    """One training step over a resident uint8 dataset; state the step needs lives here."""

    def __init__(self, args, model, device, x, y):
        self.args, self.model, self.device, self.x, self.y = args, model, device, x, y
        self.cuda = device.type == "cuda"
        self.amp = args.bf16 and self.cuda  # normexp ignores train.bf16 off CUDA
        self.scale = torch.tensor([1 / (255 * s) for s in CIFAR_STD], device=device).view(1, 3, 1, 1)
        self.shift = torch.tensor([-m / s for m, s in zip(CIFAR_MEAN, CIFAR_STD)],
                                  device=device).view(1, 3, 1, 1)
        # Roles of nn/params.cpp: conv/linear weights decay; BN affine and biases only when
        # decay_norm_and_bias (true in the Table 1 bn configs, hence the default).
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.decays = [args.decay_norm_and_bias or p.dim() > 1 for p in self.params]
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.steps_per_epoch = x.shape[0] // args.batch
        self.perm, self.step_no, self.graph = None, 0, None
        self.fwd = torch.compile(model, mode=args.compile_mode) if args.mode == "compile" else model
        if args.mode == "graphs":
            # torch.optim.SGD reads lr on the host; a replayed graph needs it in device memory.
            self.lr_t = torch.zeros((), device=device)
            self.bufs = [torch.zeros_like(p) for p in self.params]
            self.idx = torch.zeros(args.batch, dtype=torch.int64, device=device)
        else:
            groups = [{"params": [p for p, d in zip(self.params, self.decays) if d],
                       "weight_decay": args.weight_decay},
                      {"params": [p for p, d in zip(self.params, self.decays) if not d],
                       "weight_decay": 0.0}]
            # PyTorch's default on CUDA is the multi-tensor (foreach) update; --no-foreach gives
            # normexp's one-parameter-at-a-time loop, for a launch-for-launch comparison.
            self.opt = torch.optim.SGD([g for g in groups if g["params"]], lr=args.lr,
                                       momentum=0.9, foreach=False if args.no_foreach else None)

    def lr_at(self, step):
        # Cosine to 0 over the whole run, no warmup (configs/ikami/base.yaml).
        t = min(1.0, step / max(1, self.args.warmup + self.args.steps))
        return self.args.lr * 0.5 * (1 + math.cos(math.pi * t))

    def next_indices(self):
        i = self.step_no % self.steps_per_epoch
        if i == 0:  # new epoch, new order (DeviceLoader::new_epoch)
            self.perm = torch.randperm(self.x.shape[0], device=self.device)
        return self.perm[i * self.args.batch:(i + 1) * self.args.batch]

    def forward_backward(self, idx):
        images, labels = self.x.index_select(0, idx), self.y.index_select(0, idx)
        x = torch.addcmul(self.shift, random_crop_flip(images).float(), self.scale)
        if self.args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # Graph capture wants the autocast weight cache off; with one use per weight it saves nothing.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp,
                            cache_enabled=self.args.mode != "graphs"):
            logits = self.fwd(x)
        logits = logits.float()
        loss = F.cross_entropy(logits, labels)
        self.zero_grad()
        loss.backward()
        return loss, logits, labels

    def zero_grad(self):
        if self.args.mode == "graphs":
            grads = [p.grad for p in self.params if p.grad is not None]
            if grads:
                torch._foreach_zero_(grads)
        else:
            self.opt.zero_grad(set_to_none=False)  # in place, as normexp's Optimizer::zero_grad

    def sgd_on_device(self):
        # optim/sgd.cpp with lr from self.lr_t: g += wd p; buf = 0.9 buf + g; p -= lr buf.
        # Buffers start at zero, so the first step gives buf = g as normexp's clone does.
        with torch.no_grad():
            ps, gs = self.params, [p.grad for p in self.params]
            if self.args.weight_decay:
                dec = [i for i, d in enumerate(self.decays) if d]
                decayed = torch._foreach_add([gs[i] for i in dec], [ps[i] for i in dec],
                                             alpha=self.args.weight_decay)
                for i, g in zip(dec, decayed):
                    gs[i] = g
            torch._foreach_mul_(self.bufs, 0.9)
            torch._foreach_add_(self.bufs, gs)
            torch._foreach_add_(ps, torch._foreach_mul(self.bufs, -self.lr_t))

    def body(self, idx):
        loss, logits, labels = self.forward_backward(idx)
        if self.args.mode == "graphs":
            self.sgd_on_device()
        else:
            self.opt.step()
        with torch.no_grad():  # on-device sums: no host sync per step
            self.loss_sum.add_(loss.detach().double(), alpha=labels.shape[0])
            self.correct.add_(logits.argmax(1).eq(labels).sum())
        return loss.detach()

    def step(self):
        lr, idx = self.lr_at(self.step_no), self.next_indices()
        if self.args.mode != "graphs":
            for g in self.opt.param_groups:
                g["lr"] = lr
            self.last_loss = self.body(idx)
        else:
            self.lr_t.fill_(lr)
            self.idx.copy_(idx)
            if self.step_no < GRAPH_EAGER_STEPS:
                self.eager_on_side_stream()
            else:
                if self.graph is None:
                    self.capture()
                self.graph.replay()
        self.step_no += 1

    def eager_on_side_stream(self):
        # The steps before the capture run eagerly on a side stream (cuDNN autotuning, .grad
        # allocation), as torch.cuda.graphs asks. They are real steps of the run, each on its
        # own batch and counted in the sums, as normexp's eager warmup steps (train/step.cpp).
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            self.last_loss = self.body(self.idx)
        torch.cuda.current_stream().wait_stream(s)

    def capture(self):
        # The whole step -- gather, augment, forward, backward, SGD, sums -- as one graph.
        # Capturing runs nothing; the replay that follows is this step.
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.last_loss = self.body(self.idx)


# ---------------------------------------------------------------- driver -------------------
def make_data(args, device, n):
    g = torch.Generator(device="cpu").manual_seed(args.seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, args.classes, (n,), dtype=torch.int64, generator=g)
    if args.selfcheck:  # learnable: a class-dependent colour under the noise
        colours = torch.randint(0, 256, (args.classes, 3, 1, 1), generator=g)
        x = ((x.int() // 4 + colours[y] * 3 // 4)).to(torch.uint8)
    return x.to(device), y.to(device)


def stats_ms(times):
    t = sorted(times)

    def q(p):  # nearest rank, as normexp's percentile() (lib/train/bench.cpp)
        return t[min(len(t), max(1, math.ceil(p * len(t)))) - 1]
    return {"mean": sum(t) / len(t), "p50": q(0.5), "p95": q(0.95), "min": t[0], "max": t[-1]}


def write_json(path, obj):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".train_bench.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def run(args, loss_log=None):
    # loss_log (--selfcheck only) reads the loss every step: a host sync, fine there.
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.seed)
    if args.mode == "graphs" and device.type != "cuda":
        sys.exit("--mode graphs needs --device cuda")
    model = build_model(args).to(device)
    if args.channels_last:  # weights too, as normexp's train.channels_last (use_channels_last)
        model = model.to(memory_format=torch.channels_last)
    nparams = sum(p.numel() for p in model.parameters())
    if args.count_params:
        print(nparams)
        return
    model.train()
    x, y = make_data(args, device, args.batch * args.epoch_batches)
    tr = Trainer(args, model, device, x, y)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        tr.step()
    sync()
    times = []
    if cuda:
        events = [torch.cuda.Event(enable_timing=True) for _ in range(args.steps + 1)]
        t0 = time.perf_counter()
        events[0].record()
        for i in range(args.steps):
            tr.step()
            events[i + 1].record()
            if loss_log is not None:
                loss_log.append(tr.last_loss.item())
        sync()
        wall = time.perf_counter() - t0
        times = [events[i].elapsed_time(events[i + 1]) for i in range(args.steps)]
    else:
        t0 = time.perf_counter()
        for _ in range(args.steps):
            ts = time.perf_counter()
            tr.step()
            times.append(1e3 * (time.perf_counter() - ts))
            if loss_log is not None:
                loss_log.append(tr.last_loss.item())
        wall = time.perf_counter() - t0
    final_loss = tr.last_loss.item()
    seen = (args.warmup + args.steps) * args.batch
    result = {
        "benchmark": "train_step",
        "tool": "pytorch-" + args.mode,
        "model": args.model,
        "depth": args.depth if args.model != "cnn9" else 9,
        "width": 1 if args.model == "resnet" else (int(args.width) if args.width == int(args.width)
                                                   else args.width),
        "batch_size": args.batch,
        "bf16": tr.amp,
        "channels_last": args.channels_last,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda,
                     "cudnn": torch.backends.cudnn.version() if cuda else None,
                     "python": platform.python_version()},
        "warmup": args.warmup,
        "steps": args.steps,
        "images_per_s": args.steps * args.batch / wall,
        "steps_per_s": args.steps / wall,
        "step_ms": stats_ms(times),
        "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if cuda else None,
        "parameters": nparams,
        "final_loss": final_loss,
    }
    mean_loss = tr.loss_sum.item() / seen
    err = 100.0 * (1 - tr.correct.item() / seen)
    print(f"{result['tool']} {args.model} d{result['depth']} w{result['width']} B{args.batch} "
          f"bf16={result['bf16']} cl={args.channels_last} on {result['device']}: "
          f"{result['images_per_s']:.1f} img/s, step {result['step_ms']['p50']:.2f} ms p50, "
          f"peak {result['peak_memory_bytes']}, {nparams} params, final loss {final_loss:.4f} "
          f"(mean {mean_loss:.4f}, train err {err:.1f}%)")
    if args.out:
        write_json(args.out, result)
    return result, times


def selfcheck(args):
    # Pipeline: crop at offset PAD is the identity; then a short run must learn something.
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    off = torch.full((4,), PAD)
    assert torch.equal(crop(F.pad(x, (PAD,) * 4), 8, 8, off, off), x), "crop is not the identity"
    args.epoch_batches, args.steps, args.out = 1, max(args.steps, 30), None
    args.warmup = GRAPH_EAGER_STEPS + 1 if args.mode == "graphs" else 0
    losses = []
    run(args, losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    ok = last < 0.7 * first
    print(f"selfcheck: mean loss of the first 5 steps {first:.4f}, of the last 5 {last:.4f}: "
          f"{'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["wrn", "resnet", "cnn9"], default="wrn")
    ap.add_argument("--depth", type=int, help="default 28 (wrn), 110 (resnet)")
    ap.add_argument("--width", type=float, help="wrn k (default 10); cnn9 multiplier (1.0)")
    ap.add_argument("--shortcut", choices=["A", "B"], default="A", help="resnet shortcut")
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epoch-batches", type=int, default=16, help="dataset = batch * this")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only, as normexp)")
    ap.add_argument("--channels-last", action="store_true",
                    help="channels_last input and weights, as normexp's train.channels_last")
    ap.add_argument("--mode", choices=["eager", "compile", "graphs"], default="eager")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--no-decay-norm-and-bias", dest="decay_norm_and_bias", action="store_false",
                    help="decay conv/linear weights only (normexp's default; Table 1 bn configs decay all)")
    ap.add_argument("--no-foreach", action="store_true",
                    help="eager/compile: per-parameter SGD loop instead of torch's foreach update")
    ap.add_argument("--bn-eps", type=float, default=1e-5)
    ap.add_argument("--bn-momentum", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the JSON here (atomically)")
    ap.add_argument("--count-params", action="store_true", help="print the count and exit")
    ap.add_argument("--selfcheck", action="store_true", help="check that the loss goes down")
    args = ap.parse_args()
    if args.depth is None:
        args.depth = {"wrn": 28, "resnet": 110, "cnn9": 9}[args.model]
    if args.width is None:
        args.width = 10 if args.model == "wrn" else 1.0
    if args.steps < 1 or args.warmup < 0 or args.batch < 1 or args.epoch_batches < 1:
        sys.exit("need --steps >= 1, --warmup >= 0, --batch >= 1, --epoch-batches >= 1")
    if args.mode == "graphs" and args.warmup <= GRAPH_EAGER_STEPS:
        sys.exit(f"--mode graphs: the first {GRAPH_EAGER_STEPS} steps run eagerly and the next "
                 f"captures the graph, all before the timed steps; use --warmup >= "
                 f"{GRAPH_EAGER_STEPS + 1}")
    if args.selfcheck:
        sys.exit(selfcheck(args))
    run(args)


if __name__ == "__main__":
    main()
