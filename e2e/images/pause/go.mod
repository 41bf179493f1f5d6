module adaptive.dev/pause

go 1.22
