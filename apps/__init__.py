"""Applications on the gen/ library and the task packages: demo, bench, export, pretrain, eval_shapes, web."""
