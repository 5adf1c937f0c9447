"""Writes examples/configs/regression.csv: 400 synthetic rows for the CSV regression example.

target = 3 * size - 2 * age + 0.5 * rooms * size + noise, with the inputs in [0, 1). Standard library only:
    python3 scripts/make_regression_csv.py
"""
import csv
import os
import random

random.seed(7)
path = os.path.join(os.path.dirname(__file__), "..", "examples", "configs", "regression.csv")
with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["size", "age", "rooms", "target"])
    for _ in range(400):
        size, age, rooms = random.random(), random.random(), random.random()
        target = 3 * size - 2 * age + 0.5 * rooms * size + random.gauss(0, 0.05)
        w.writerow([f"{size:.4f}", f"{age:.4f}", f"{rooms:.4f}", f"{target:.4f}"])
print("wrote", os.path.normpath(path))
