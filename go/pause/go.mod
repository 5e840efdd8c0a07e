module kpyops.io/build/pause

go 1.24.0
