"""What the tests share: helpers to run servers, peers and processes, and one timeout.

Every test that waits for something that should happen soon waits at most
:data:`TIMEOUT` seconds, then fails: long enough for a loaded two-core
machine, short enough that a hang is a failure rather than a stuck run.
"""

#: Seconds a test waits for an event that should come at once before failing.
TIMEOUT = 20.0
