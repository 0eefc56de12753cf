BACKEND = "hatchling"
