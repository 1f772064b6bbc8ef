# sched/: (filled in by the issues that add it)
