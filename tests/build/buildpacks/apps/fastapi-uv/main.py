import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def index() -> dict[str, str]:
    return {"framework": "fastapi", "greeting": os.environ.get("GREETING", "hello")}
