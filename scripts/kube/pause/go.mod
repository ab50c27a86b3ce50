module lcc.local/pause

go 1.22
