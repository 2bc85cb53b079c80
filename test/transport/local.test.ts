import { createLocalNetwork } from '../../shared/transport/local.js';
import { transportConformance } from './conformance.js';

transportConformance({ name: 'local', open: async () => createLocalNetwork() });
