BACKEND = "poetry-core"
