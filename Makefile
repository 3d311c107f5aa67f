# The two things a user runs; both set up .venv on first use (scripts/setup_env.sh).
.PHONY: setup demo test

setup:
	@bash scripts/setup_env.sh

# Main job. Until the sim-in-the-loop demo lands: the Omega-QVLA method table on real
# MiniLM weights, with per-layer reports in reports/minilm/.
demo: setup
	@. .venv/omegaq_env.sh && omegaq-minilm-table --out reports/minilm

test: setup
	@. .venv/omegaq_env.sh && python -m pytest -q test
