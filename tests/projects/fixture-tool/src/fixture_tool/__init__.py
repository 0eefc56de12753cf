MAGIC = "built with fixture-tool"
