BACKEND = "pdm-backend"
