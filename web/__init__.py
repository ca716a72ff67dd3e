"""The local web page (app.py): drop images, get each one's verdict with the view the model saw, its Grad-CAM
and, when an edit is likely, its edit map. Built on utils.inference.predict.predict, the path predict.py takes."""
