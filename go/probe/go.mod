module kpyops.io/build/probe

go 1.24.0
