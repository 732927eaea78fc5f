"""What a variant is and what runs it: the table of variant names and kinds every reader goes
through (:mod:`.table`), and the artifacts convert wrote, found and loaded for every runtime
(:mod:`.artifacts`). Below everything that measures, registers or predicts."""
