"""The imperative shell the tools share: AWS, the Lambda, keys, files, logs and flags. See the
``cacore`` package docstring for the boundary."""
