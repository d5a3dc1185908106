"""The flow-test runner's scenarios and sandbox (`python -m core flows run`), kept apart
from the flows they test so that production code never imports its own test harness."""
