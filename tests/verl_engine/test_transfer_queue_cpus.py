"""Why ``main_ppo`` hangs silently on a small machine: TransferQueue's actors hold one Ray CPU each.

verl 0.9.1's ``main_ppo`` starts TransferQueue (``tq.init``) with verl's ``transfer_queue`` config: a
controller and ``backend.SimpleStorage.num_data_storage_units`` (8) storage units, Ray actors with
``num_cpus=1``; ``init`` waits for all of them. The fast tests check those facts on the installed
packages; the slow one starts Ray with 2 logical CPUs and shows init finishing with 1 storage unit, and
with 2 still waiting after 45 s with every CPU held (units + controller > CPUs). Measured by hand with 4 CPUs: 3 units ready in 27 s,
4 and 8 units still waiting after 90 s (README, section verl: the overrides a small machine needs).
"""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import verl
from omegaconf import OmegaConf
from transfer_queue.controller import TransferQueueController
from transfer_queue.storage.simple_storage import SimpleStorageUnit

VERL_TQ_CONFIG = Path(verl.__file__).parent / "trainer" / "config" / "transfer_queue" / "transfer_queue.yaml"
READY_S, WAIT_S = 240, 45      # the generous limit for init to finish; how long the other case is watched


def verl_tq_config():
    return OmegaConf.load(VERL_TQ_CONFIG)


def test_verl_starts_eight_storage_units():
    assert verl_tq_config().backend.SimpleStorage.num_data_storage_units == 8


@pytest.mark.parametrize("actor", [SimpleStorageUnit, TransferQueueController])
def test_each_transfer_queue_actor_holds_one_ray_cpu(actor):
    assert actor._default_options.get("num_cpus") == 1


def probe(cpus: int, units: int, wait_s: float) -> str:
    """tq.init on a Ray cluster of ``cpus`` logical CPUs: 'ready' when it finishes within ``wait_s``,
    else 'waiting, free CPUs <n>'."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, str(cpus), str(units), str(wait_s)], env=env,
                          capture_output=True, text=True, timeout=wait_s + 240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_init_waits_silently_when_storage_units_outnumber_ray_cpus():
    assert probe(2, 1, READY_S) == "ready"
    # 2 units + the controller want 3 CPUs: every CPU is held and init has not returned
    assert probe(2, 2, WAIT_S) == "waiting, free CPUs 0"


def main(cpus: int, units: int, wait_s: float) -> None:
    import ray
    import transfer_queue as tq

    conf = verl_tq_config()
    conf.backend.SimpleStorage.num_data_storage_units = units
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    finished = threading.Event()
    threading.Thread(target=lambda: (tq.init(conf), finished.set()), daemon=True).start()
    t0 = time.perf_counter()
    ready = finished.wait(wait_s)
    print(f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    free = ray.available_resources().get("CPU", 0)
    print("ready" if ready else f"waiting, free CPUs {free:g}", flush=True)
    os._exit(0)         # no ray.shutdown: the waiting init would hold it; Ray's processes end with the driver


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
