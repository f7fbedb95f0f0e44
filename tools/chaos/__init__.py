"""`make chaos`: faults injected into the running platform under load, and the invariants
(nothing lost, nothing doubled, nothing dead-lettered, analytics equal to the events) checked
from the ground truth afterwards. See README "make chaos"."""
