from ncodec.app.cli import run

run()
