class ModelFileError(ValueError):
    """A model file cannot be used: the message names the file and what is wrong with it."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
