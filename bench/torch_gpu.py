"""The GPU twins of bench/workloads.cpp in PyTorch eager mode, for bench/gpu.sh.

    python3 bench/torch_gpu.py WORKLOAD [EPOCHS] [BATCH]     prints one JSON line, as bench_strata does

The same models, data, optimizer (Adam 1e-3, Keras's epsilon 1e-7) and loop as Strata's fit(): batches
of the shuffled host arrays copied to the GPU each step, the loss and accuracy read back each step (what
a Keras progress bar needs), float32 throughout (TF32 off for matmuls and convolutions, as Strata's
default). Ten batches train untimed first.
"""
import gzip
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from torch import nn


def load_idx(path):
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist():
    directory = os.environ.get("STRATA_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
    def find(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(directory, name)):
                return os.path.join(directory, name)
        raise FileNotFoundError(f"{stem} not in {directory} (set STRATA_FASHION_MNIST)")
    return [load_idx(find(s)) for s in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]


class LastStep(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 128, batch_first=True)
        self.dense = nn.Linear(128, 10)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.dense(out[:, -1])


def model_for(workload):
    if workload == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    if workload == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(1600, 10))
    if workload == "lstm":
        return LastStep()
    raise SystemExit(f"unknown workload '{workload}' (mlp, cnn or lstm)")


def main():
    workload = sys.argv[1] if len(sys.argv) > 1 else "mlp"
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda")
    torch.manual_seed(42)
    x_train, y_train, x_test, y_test = fashion_mnist()
    shape = (-1, 1, 28, 28) if workload == "cnn" else (-1, 28, 28)
    x_train = torch.from_numpy(x_train.astype(np.float32) / 255.0).reshape(shape)
    x_test = torch.from_numpy(x_test.astype(np.float32) / 255.0).reshape(shape)
    y_train = torch.from_numpy(y_train.astype(np.int64))
    y_test = torch.from_numpy(y_test.astype(np.int64))
    model = model_for(workload).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()

    def train(x, y, n_epochs):
        for _ in range(n_epochs):
            order = torch.randperm(len(x))
            total_loss, correct = 0.0, 0
            for begin in range(0, len(x), batch):
                rows = order[begin:begin + batch]
                xb, yb = x[rows].to(device), y[rows].to(device)
                optimizer.zero_grad(set_to_none=True)
                logits = model(xb)
                loss = loss_fn(logits, yb)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(rows)
                correct += (logits.argmax(1) == yb).sum().item()

    model.train()
    warm = min(10 * batch, len(x_train))
    train(x_train[:warm], y_train[:warm], 1)
    torch.cuda.synchronize()
    start = time.perf_counter()
    train(x_train, y_train, epochs)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start

    model.eval()
    with torch.no_grad():
        correct = 0
        for begin in range(0, len(x_test), batch):
            logits = model(x_test[begin:begin + batch].to(device))
            correct += (logits.argmax(1).cpu() == y_test[begin:begin + batch]).sum().item()
        one = x_test[:1]
        latencies = []
        for i in range(1100):
            t0 = time.perf_counter()
            model(one.to(device)).cpu()
            if i >= 100:
                latencies.append((time.perf_counter() - t0) * 1e6)
    print(json.dumps({
        "framework": "pytorch", "workload": workload, "backend": "cuda", "batch_size": batch, "epochs": epochs,
        "train_seconds": round(seconds, 3), "samples_per_second": round(len(x_train) * epochs / seconds),
        "test_accuracy": round(correct / len(x_test), 4), "predict_one_us": round(float(np.median(latencies)), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
