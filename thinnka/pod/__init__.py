"""What is done on and against the pod: its paths, SSH keys and shell, the detached jobs
(setup, train, merge) and the watchdog that bounds it."""
