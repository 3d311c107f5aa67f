# The two things a user runs; both set up .venv on first use (scripts/setup_env.sh).
.PHONY: setup demo test minilm

setup:
	@bash scripts/setup_env.sh

# Main job: sim-in-the-loop. sim_node and policy_node run as separate processes over real
# DDS (Fast DDS shared memory, localhost); the policy is the bundled W4A4 artifact on CPU.
# Two held-out episodes of each task; per-episode success and inference latency.
demo: setup
	@. .venv/omegaq_env.sh && for task in lift bin handover; do \
	  omegaq-bringup sim --artifact models/pi05_small_w4a4 --task $$task --episodes 2 \
	    --seed 100000 || exit 1; done

test: setup
	@. .venv/omegaq_env.sh && python -m pytest -q test

# The Omega-QVLA method table on real MiniLM weights (reports/minilm/).
minilm: setup
	@. .venv/omegaq_env.sh && omegaq-minilm-table --out reports/minilm
