module github.com/cairn-os/cairn

go 1.26.0
