"""vrbench's tests: a regular package, so that a `tests` package that some dependency installs
(autorank's baycomp does) cannot hide this one."""
