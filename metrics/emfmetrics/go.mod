module github.com/shardflow/shardflow/metrics/emfmetrics

go 1.25.0

replace github.com/shardflow/shardflow => ../..

require (
	github.com/shardflow/shardflow v0.0.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
)
