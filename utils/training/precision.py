"""Which precision a training run uses: AMP on CUDA; on a CPU bf16 only where it runs natively and a few
measured steps say it is faster, else fp32."""
import os
import platform
import time

import torch

from utils import distributed


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPU instructions that make bf16 convolutions fast (oneDNN's check)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_name() -> str:
    """The CPU's model name as the OS reports it (Linux: /proc/cpuinfo), else the platform's best guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_cpu() -> dict:
    """What a CPU speed figure was measured on: the CPU, its threads, whether bf16 runs natively, and the
    instruction-set cap oneDNN was given (ONEDNN_MAX_CPU_ISA: how a bench runs a bf16 CPU as an AVX2-only one)."""
    return {"cpu": cpu_name(), "threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16(),
            "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")}


def cpu_line(cpu=None) -> str:
    cpu = cpu or describe_cpu()
    return (f"{cpu['cpu']}, {cpu['threads']} threads, " + ("native bf16" if cpu["native_bf16"] else "fp32 only")
            + (f", oneDNN capped at {cpu['isa_cap']}" if cpu.get("isa_cap") else ""))


def cpu_autocast(dtype):
    return torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)


def step_seconds(model, loss_fn, x, y, autocast, steps=3):
    """Seconds per training step of `model` on the batch (x, y) under `autocast` (weights restored afterwards)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with autocast:
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        times.append(time.perf_counter() - t0)
    model.load_state_dict(state)
    return min(times[1:])


def choose_precision(config, device, model, loss_fn, batch, log):
    """-> (autocast context, gradient scaler or None). CUDA: AMP, bf16 where supported, else fp16 with a
    scaler. CPU: bf16 only when asked for, or with `auto` when the CPU has native bf16 and a few measured
    training steps run faster than fp32; else fp32."""
    if config.precision == "fp32":
        return torch.autocast(device.type, enabled=False), None
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        log(f"precision: AMP {str(dtype).split('.')[-1]} on CUDA")
        return torch.autocast("cuda", dtype=dtype), torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    if device.type != "cpu":
        return torch.autocast(device.type, enabled=False), None
    if config.precision == "bf16":
        log("precision: bf16 autocast on the CPU (asked for)")
        return torch.autocast("cpu", dtype=torch.bfloat16), None
    if not cpu_has_native_bf16():
        log("precision: fp32 (this CPU has no native bf16: no AVX512-BF16 or AMX)")
        return torch.autocast("cpu", enabled=False), None
    x, y = batch
    fp32, bf16 = (step_seconds(model, loss_fn, x, y, cpu_autocast(d)) for d in (torch.float32, torch.bfloat16))
    use = distributed.broadcast_object(bf16 < 0.9 * fp32)  # rank 0's measurement decides for every rank
    log(f"precision: {'bf16' if use else 'fp32'} (measured {fp32 * 1e3:.0f} ms a step in fp32, "
        f"{bf16 * 1e3:.0f} ms in bf16)")
    return cpu_autocast(torch.bfloat16 if use else torch.float32), None


def precision_name(autocast) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast.fast_dtype] if autocast._enabled else "fp32"
