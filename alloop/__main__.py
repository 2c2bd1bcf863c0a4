from alloop.cli import app

app()
